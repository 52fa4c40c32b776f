"""`condor-cloud node ...`: commands of an execute node, run by its administrator (condor_cloud.core.cli gathers
the installed roles' commands).

  condor-cloud node cache list|prune       the image cache of this execute node
"""

import click

from condor_cloud.core.cli import cloud_errors, main_group, print_json


@main_group.group("node")
def node_group():
    """This execute node."""


@node_group.group("cache")
def cache_group():
    """The node's image cache (CLOUD_IMAGE_CACHE)."""


def _node_settings():
    from condor_cloud.core import config

    return config.load_settings()


@cache_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_list(as_json):
    """List cached image copies, least recently used first."""
    from condor_cloud.node.cache import ImageCache
    from condor_cloud.node.instance_dirs import referenced_bases

    with cloud_errors():
        settings = _node_settings()
        entries = ImageCache(settings.image_cache, settings.qemu_img).entries()
        used = referenced_bases(settings.instance_dir)
    rows = [{"image": e.image, "version": e.version, "format": e.format, "bytes": e.allocated,
             "last_used": e.last_used, "in_use": e.filename in used, "file": e.filename} for e in entries]
    if as_json:
        print_json(rows)
        return
    total = sum(r["bytes"] for r in rows)
    click.echo("%-32s %-16s %-6s %12s %s" % ("IMAGE", "VERSION", "FORMAT", "BYTES", "IN USE"))
    for r in rows:
        click.echo("%-32s %-16s %-6s %12d %s" % (r["image"], r["version"], r["format"], r["bytes"],
                                                 "yes" if r["in_use"] else "no"))
    click.echo("total %d bytes in %s (limit %d)" % (total, settings.image_cache, settings.cache_max_size))


@cache_group.command("prune")
@click.option("--all", "prune_all", is_flag=True, help="Remove every entry no instance uses (not just down to "
              "CLOUD_CACHE_MAX_SIZE).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_prune(prune_all, as_json):
    """Evict least recently used entries that no instance uses."""
    from condor_cloud.node.cache import ImageCache
    from condor_cloud.node.reclaim import entries_in_use

    with cloud_errors():
        settings = _node_settings()
        cache = ImageCache(settings.image_cache, settings.qemu_img)
        limit = 1 if prune_all else settings.cache_max_size
        # In use: what instances record, or their overlays' headers when the record is damaged (then, if
        # neither can be read, nothing is evicted).
        removed = cache.evict(limit, lambda: entries_in_use(settings.instance_dir, cache.root)) if limit else []
    if as_json:
        print_json([{"file": e.filename, "bytes": e.allocated} for e in removed])
        return
    for e in removed:
        click.echo("removed %s (%d bytes)" % (e.filename, e.allocated))
    click.echo("%d entr%s removed" % (len(removed), "y" if len(removed) == 1 else "ies"))
