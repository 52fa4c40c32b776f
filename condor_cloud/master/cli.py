"""`condor-cloud` commands of the master (condor_cloud.core.cli gathers the installed roles' commands):

  condor-cloud image list|add|remove|sweep the shared image store
  condor-cloud instance launch|list|show|console|destroy   instances (VM-universe jobs) through the local schedd
  condor-cloud user add|remove|passwd|list the API's users
  condor-cloud user quota NAME [--instances N] [--cpus N] [--memory SIZE]   a user's quota (issue 15)
  condor-cloud usage [--since DATE] [--until DATE] [--user NAME] [--json]   instance-hours per user
  condor-cloud user access-key create|list|delete NAME   the EC2 API's access keys of a user
  condor-cloud api-cert create|show        the API's TLS certificate

Exit status: 0 success; 1 an error (message on standard error); 2 bad usage.
"""

import contextlib
import errno
import getpass
import hashlib
import os
import re
import stat
import sys
import time

import click

from condor_cloud.core import errors, images, qemuimg
from condor_cloud.core.cli import cloud_errors, fail, main_group, print_json
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.core.files import fsync_dir
from condor_cloud.master.console import DEFAULT_BYTES, MAX_BYTES

CHUNK = 4 << 20


def _settings():
    from condor_cloud.master.config import load_api_settings

    return load_api_settings()


@contextlib.contextmanager
def _user_file_errors(path):
    """cloud_errors() for commands that write the user file: an OSError (a full disk, a read-only filesystem) is a
    message and exit status 1, never a traceback. (UserFile leaves the file as it was and no temporary file.)"""
    try:
        with cloud_errors():
            yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fail("cannot save the user file %s: its filesystem is full; nothing was changed (free some space and "
                  "run the command again)" % path)
        fail("cannot save the user file %s: %s; nothing was changed" % (path, exc.strerror or exc))


# -- images --------------------------------------------------------------------------------------------
@main_group.group("image")
def image_group():
    """The shared image store (CLOUD_IMAGE_STORE)."""


@image_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def image_list(as_json):
    """List the launchable images with their API ids."""
    from condor_cloud.master.jobs import image_id

    with cloud_errors():
        settings = _settings()
        found = images.list_images(settings.image_store)
    rows = [{"name": i.name, "id": image_id(i.name), "size": i.size, "sha256": i.sha256} for i in found]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no images in %s (add one with 'condor-cloud image add FILE')" % settings.image_store)
        return
    click.echo("%-32s %12s  %-16s  %s" % ("NAME", "SIZE", "SHA256", "ID"))
    for r in rows:
        click.echo("%-32s %12d  %-16s  %s" % (r["name"], r["size"], (r["sha256"] or "-")[:16], r["id"]))


def _open_source(source):
    """Open the file the administrator named, for reading: a regular file, not through a symbolic link
    (O_NOFOLLOW), and never a FIFO or device (O_NONBLOCK, then fstat on the descriptor). The image is copied
    from this descriptor, so what is checked is what is published. Returns (fd, stat)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CloudError("%s is a symbolic link: name the image file itself (only regular files are added)"
                             % shown(source, 200), errors.BAD_REQUEST) from None
        raise CloudError("cannot open %s: %s" % (shown(source, 200), exc.strerror), errors.BAD_REQUEST) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CloudError("%s is not a regular file (only regular files are added)" % shown(source, 200),
                         errors.BAD_REQUEST)
    return fd, st


def _copy_with_progress(src_fd, dst_fd, size, label):
    """Copy src_fd into dst_fd (holes stay holes), hashing everything; return the SHA-256 hex digest."""
    digest = hashlib.sha256()
    zero = bytes(CHUNK)
    with click.progressbar(length=size, label=label, file=sys.stderr, show_pos=False, show_percent=True) as bar:
        offset = 0
        while True:
            block = os.pread(src_fd, CHUNK, offset)
            if not block:
                break
            digest.update(block)
            if block == zero[:len(block)]:
                os.lseek(dst_fd, len(block), os.SEEK_CUR)
            else:
                _write_all(dst_fd, block)
            offset += len(block)
            bar.update(len(block))
        os.ftruncate(dst_fd, offset)
        os.fsync(dst_fd)
    return digest.hexdigest()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def add_image(settings, source, name, replace=False, progress_label=None):
    """Copy the regular file source (never through a symlink) into STORE/staging/, verify it with qemu-img,
    write IMAGE.sha256, publish by rename. Returns the SHA-256 hex digest."""
    from condor_cloud.master.jobs import image_id, store_images

    images.check_image_name(name)
    store = settings.image_store
    target = os.path.join(store, name)
    if os.path.lexists(target) and not replace:
        raise CloudError("image %s exists already in %s (use --replace)" % (name, store), errors.BAD_REQUEST)
    for other in store_images(store).values():
        if other.name != name and image_id(other.name) == image_id(name):
            raise CloudError("image %s would have the same API id as %s (names may not differ only in case or "
                             "'.'/'-')" % (name, other.name), errors.BAD_REQUEST)
    src_fd, src_st = _open_source(source)
    try:
        return _publish(settings, src_fd, src_st.st_size, name, progress_label)
    finally:
        os.close(src_fd)


# What an interrupted `image add` leaves in STORE/staging/: its copy <name>.<pid>.tmp and checksum .tmp.sha256.
_STAGING_TMP_RE = re.compile(r".+\.(?P<pid>[0-9]{1,10})\.tmp(\.sha256)?")
STAGING_MAX_AGE = 24 * 3600   # seconds after which even a live writer's staging copy is a leftover (a hung add)


def _process_started(pid):
    """When process pid started (seconds since the epoch), or None if there is no such process."""
    from condor_cloud.core.processes import process_start_time

    ticks = process_start_time(pid)
    if ticks is None:
        return None
    with open("/proc/stat", "rb") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def sweep_staging(store, max_age=STAGING_MAX_AGE, now=None):
    """Remove the leftovers of interrupted `image add`s from STORE/staging/: a temporary copy or checksum file
    whose writer is gone (no process with its pid, or one started after the file was last written: a reused pid),
    and any of them older than max_age seconds. Other files (an administrator's own staging) are left alone.
    Returns the removed names."""
    staging = os.path.join(store, images.STAGING)
    now = time.time() if now is None else now
    try:
        names = os.listdir(staging)
    except FileNotFoundError:
        return []
    removed = []
    for name in sorted(names):
        m = _STAGING_TMP_RE.fullmatch(name)
        if not m:
            continue
        path = os.path.join(staging, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        started = _process_started(int(m.group("pid")))
        writer_alive = started is not None and started <= st.st_mtime + 1
        if writer_alive and now - st.st_mtime <= max_age:
            continue
        try:
            os.unlink(path)
            removed.append(name)
        except FileNotFoundError:
            pass
    return removed


def _publish(settings, src_fd, size, name, progress_label):
    """Copy from src_fd into staging/, verify, then rename image and checksum into the store."""
    store = settings.image_store
    staging = os.path.join(store, images.STAGING)
    target = os.path.join(store, name)
    os.makedirs(staging, mode=0o755, exist_ok=True)
    for leftover in sweep_staging(store):
        click.echo("removed %s/%s, left by an interrupted image add" % (staging, leftover), err=True)
    tmp = os.path.join(staging, "%s.%d.tmp" % (name, os.getpid()))
    sidecar_tmp = tmp + images.CHECKSUM_SUFFIX
    done = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            digest = _copy_with_progress(src_fd, fd, size, progress_label or "copying %s" % name)
        finally:
            os.close(fd)
        qemuimg.probe(settings.qemu_img, tmp, name, qemuimg.expected_format(name))
        with open(sidecar_tmp, "w") as f:
            f.write("%s  %s\n" % (digest, name))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.chmod(sidecar_tmp, 0o644)
        sidecar = target + images.CHECKSUM_SUFFIX
        if os.path.lexists(target):
            # Replacing: drop the old checksum first, so no reader pairs the new image with it.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sidecar)
            fsync_dir(store)
            os.rename(tmp, target)
            os.rename(sidecar_tmp, sidecar)
        else:
            # New: the checksum first, so the image is never visible without it.
            os.rename(sidecar_tmp, sidecar)
            os.rename(tmp, target)
        fsync_dir(store)
        done = True
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CloudError("could not add image %s: the store's filesystem (%s) is full; nothing was published"
                             % (name, store), errors.NO_SPACE) from None
        raise CloudError("could not add image %s: %s" % (name, exc.strerror or exc), errors.INTERNAL) from None
    finally:
        if not done:
            for path in (tmp, sidecar_tmp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    return digest


@image_group.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Name in the store (default: the file's name).")
@click.option("--replace", is_flag=True, help="Replace an image of the same name.")
def image_add(path, name, replace):
    """Copy a qcow2 or raw disk image into the store (verified, with a SHA-256 checksum file)."""
    name = name or os.path.basename(path)
    with cloud_errors():
        settings = _settings()
        digest = add_image(settings, path, name, replace)
    from condor_cloud.master.jobs import image_id

    click.echo("added %s (sha256 %s, id %s)" % (name, digest, image_id(name)))


@image_group.command("sweep")
@click.option("--max-age", type=click.IntRange(0), default=STAGING_MAX_AGE, show_default=True,
              help="Seconds after which a staging copy is removed even if its writer still runs (a hung add).")
def image_sweep(max_age):
    """Remove what interrupted image adds left in the store's staging/ directory.

    Every `image add` does this first; the condor-cloud-image-sweep.timer runs it hourly on the master."""
    with cloud_errors():
        settings = _settings()
        try:
            removed = sweep_staging(settings.image_store, max_age)
        except OSError as exc:
            fail("cannot sweep %s: %s" % (os.path.join(settings.image_store, images.STAGING), exc.strerror or exc))
    for name in removed:
        click.echo("removed %s" % os.path.join(settings.image_store, images.STAGING, name))


@image_group.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even if queued instances still need it.")
def image_remove(name, force):
    """Remove an image (and its checksum file) from the store. Running instances keep their cached copy."""
    with cloud_errors():
        images.check_image_name(name)
        settings = _settings()
        target = os.path.join(settings.image_store, name)
        if not os.path.lexists(target):
            fail("no image %s in %s" % (shown(name), settings.image_store))
        if not force:
            from condor_cloud.master.jobs import BackendError, CloudJobs

            try:
                waiting = [i for i in CloudJobs().list() if i.image == name and i.state == "PENDING"]
            except BackendError as exc:
                fail("cannot check the queue for instances of %s (%s); use --force to remove anyway" % (name, exc))
            if waiting:
                fail("%d pending instance(s) still need %s (%s); use --force to remove anyway"
                      % (len(waiting), name, ", ".join(i.id for i in waiting[:5])))
        os.unlink(target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target + images.CHECKSUM_SUFFIX)
    click.echo("removed %s" % name)


# -- instances -----------------------------------------------------------------------------------------
@main_group.group("instance")
def instance_group():
    """Instances: VM-universe jobs in the local schedd."""


def _instance_dict(info):
    return {"id": info.id, "name": info.name, "owner": info.owner, "state": info.state, "image": info.image,
            "image_id": info.image_id, "hardware_profile": info.profile, "memory": info.memory, "cpus": info.cpus,
            "job": "%d.%d" % (info.cluster, info.proc), "job_status": info.job_status, "keyname": info.keyname,
            "launch_time": info.launch_time, "public_addresses": info.addresses, "hold_reason": info.hold_reason}


def _print_instances(infos):
    click.echo("%-36s %-16s %-10s %-8s %-10s %-24s %s" % ("ID", "NAME", "OWNER", "STATE", "PROFILE", "IMAGE",
                                                          "ADDRESSES"))
    for i in infos:
        click.echo("%-36s %-16s %-10s %-8s %-10s %-24s %s" % (i.id, i.name, i.owner, i.state, i.profile or "-",
                                                              i.image, ",".join(i.addresses) or "-"))


def _default_owner():
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _jobs():
    from condor_cloud.master.jobs import CloudJobs

    return CloudJobs(api_account=_settings().api_account)


@instance_group.command("launch")
@click.argument("image")
@click.option("--profile", "hwp", help="Hardware profile (default: the first one configured).")
@click.option("--name", help="Instance name (default i-<time>).")
@click.option("--owner", help="Cloud user who owns it (default: you).")
@click.option("--key", "keyname", help="Name of one of the owner's SSH keys.")
@click.option("--user-data", "user_data_file", type=click.File("rb"), help="File with user data (e.g. cloud-config).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def instance_launch(image, hwp, name, owner, keyname, user_data_file, as_json):
    """Launch an instance of IMAGE (a store name or an API image id)."""
    import base64
    import time

    from condor_cloud.master.jobs import store_images
    from condor_cloud.master.jobs import check_instance_name, user_data_for_job
    from condor_cloud.master.keys import KeyStore
    from condor_cloud.master.users import check_name

    with cloud_errors():
        settings = _settings()
        found = store_images(settings.image_store)
        info = found.get(image) or next((i for i in found.values() if i.name == image), None)
        if info is None:
            fail("no image %s in %s (see 'condor-cloud image list')" % (shown(image), settings.image_store))
        profile = settings.profile(hwp) if hwp else settings.profiles[0]
        if profile is None:
            fail("no hardware profile %s (configured: %s)" % (shown(hwp), ", ".join(p.id for p in settings.profiles)))
        owner = check_name(owner or _default_owner())
        name = check_instance_name(name or "i-%d" % int(time.time()))
        user_data = ""
        if user_data_file is not None:
            user_data = user_data_for_job(base64.b64encode(user_data_file.read()).decode("ascii"),
                                        settings.max_user_data)
        key = KeyStore(settings.keys_dir).get(owner, keyname) if keyname else None
        created = _jobs().submit(owner, info.name, profile, name, user_data, key)
    if as_json:
        print_json(_instance_dict(created))
    else:
        click.echo("launched %s (job %d.%d)" % (created.id, created.cluster, created.proc))


@instance_group.command("list")
@click.option("--owner", help="Only this cloud user's instances (default: all VM jobs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def instance_list(owner, as_json):
    """List instances (one schedd query)."""
    with cloud_errors():
        infos = _jobs().list(owner)
    if as_json:
        print_json([_instance_dict(i) for i in infos])
    else:
        _print_instances(infos)


@instance_group.command("show")
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def instance_show(instance_id, as_json):
    """Show one instance."""
    with cloud_errors():
        info = _jobs().get(instance_id)
    data = _instance_dict(info)
    if as_json:
        print_json(data)
    else:
        for k in sorted(data):
            click.echo("%-17s %s" % (k + ":", data[k] if data[k] not in (None, "", []) else "-"))


@instance_group.command("destroy")
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def instance_destroy(instance_id, as_json):
    """Destroy an instance (condor_rm of its job)."""
    with cloud_errors():
        jobs = _jobs()
        info = jobs.get(instance_id)
        jobs.destroy(info, "destroyed with condor-cloud instance destroy by %s" % _default_owner())
    if as_json:
        print_json({"id": instance_id, "destroyed": True})
    else:
        click.echo("destroyed %s" % instance_id)


@instance_group.command("console")
@click.argument("instance_id")
@click.option("--bytes", "max_bytes", type=click.IntRange(1, MAX_BYTES), default=DEFAULT_BYTES, show_default=True,
              help="How much of the end of the console log to show.")
@click.option("--raw", is_flag=True, help="Keep escape sequences and control characters (default: removed).")
def instance_console(instance_id, max_bytes, raw):
    """Show the end of a running instance's serial console (INSTANCE_ID or its job id CLUSTER.PROC).

    Read with condor_tail as you: only the instance's owner may read it. After the instance has ended, its
    console log stays on its node in CLOUD_CONSOLE_DIR (for the administrator)."""
    import re

    from condor_cloud.master.console import clean, tail

    with cloud_errors():
        m = re.fullmatch(r"([0-9]{1,10})\.([0-9]{1,10})", instance_id)
        if m:
            text = tail(int(m.group(1)), int(m.group(2)), max_bytes)
        else:
            jobs = _jobs()
            text = jobs.console(jobs.get(instance_id), max_bytes)
    # color=True: click would otherwise strip escape sequences itself when the output is not a terminal.
    click.echo(text if raw else clean(text), nl=False, color=True if raw else None)


# -- users ---------------------------------------------------------------------------------------------
@main_group.group("user")
def user_group():
    """The API's users (CLOUD_API_USERS)."""


def _userfile():
    from condor_cloud.master.users import UserFile

    return UserFile(_settings().users_file)


def _read_password(password_stdin, generate):
    from condor_cloud.master.users import MIN_PASSWORD, generate_password

    if password_stdin and generate:
        fail("use either --password-stdin or --generate")
    if generate:
        return generate_password(), True
    if password_stdin:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            fail("no password on standard input")
        return line, False
    password = click.prompt("Password (at least %d characters)" % MIN_PASSWORD, hide_input=True,
                            confirmation_prompt=True)
    return password, False


@user_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Give the admin role (sees and destroys every instance).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", is_flag=True, help="Generate a random password and print it.")
def user_add(name, admin, password_stdin, generate):
    """Add a user (prompts for the password unless told otherwise)."""
    with cloud_errors():
        users = _userfile()
    with _user_file_errors(users.path):
        password, generated = _read_password(password_stdin, generate)
        users.add(name, password, "admin" if admin else "user")
    click.echo("added %s %s" % ("admin" if admin else "user", name))
    if generated:
        click.echo("password: %s" % password)


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", is_flag=True, help="Generate a random password and print it.")
def user_passwd(name, password_stdin, generate):
    """Set a user's password."""
    with cloud_errors():
        users = _userfile()
    with _user_file_errors(users.path):
        password, generated = _read_password(password_stdin, generate)
        users.set_password(name, password)
    click.echo("password of %s changed" % name)
    if generated:
        click.echo("password: %s" % password)


@user_group.command("remove")
@click.argument("name")
def user_remove(name):
    """Remove a user (their instances keep running; an admin can destroy them)."""
    with cloud_errors():
        _userfile().remove(name)
    click.echo("removed user %s" % name)


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(as_json):
    """List users, roles and quotas (never passwords); a quota value marked * is the user's own (an override),
    the others are the pool-wide defaults (CLOUD_QUOTA_*)."""
    from condor_cloud.master import quotas

    with cloud_errors():
        users = sorted(_userfile().load().values(), key=lambda u: u.name)
        defaults, qf = _quota_state()
    rows = []
    for u in users:
        quota = quotas.quota_of(u.name, defaults, qf)
        own = qf.users.get(u.name, {})
        rows.append({"name": u.name, "role": u.role, "quota": quotas.quota_dict(quota),
                     "overrides": [f for f in quotas.FIELDS if f in own]})
    if as_json:
        print_json(rows)
        return
    click.echo("%-32s %-6s %-10s %-10s %s" % ("NAME", "ROLE", "INSTANCES", "VCPUS", "MEMORY"))
    for r in rows:
        cells = [quotas.format_quota_value(f, r["quota"][f]) + ("*" if f in r["overrides"] else "")
                 for f in quotas.FIELDS]
        click.echo("%-32s %-6s %-10s %-10s %s" % (r["name"], r["role"], cells[0], cells[1], cells[2]))
    if any(r["overrides"] for r in rows):
        click.echo("* the user's own quota (condor-cloud user quota); the others are the pool-wide defaults")


# -- quotas and usage ------------------------------------------------------------------------------------
def _quota_state():
    """(pool-wide default Quota, QuotaFile of the overrides) as configured now."""
    from condor_cloud.master import quotas
    from condor_cloud.master.config import quota_defaults, quota_file

    return quota_defaults(), quotas.load(quota_file())


def _reconfig_negotiator():
    """Make the negotiator read the overrides file again (condor_reconfig -daemon negotiator); CloudError with
    what condor_reconfig said when it fails."""
    import subprocess

    try:
        p = subprocess.run(["condor_reconfig", "-daemon", "negotiator"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CloudError("condor_reconfig -daemon negotiator did not run: %s" % exc) from None
    if p.returncode != 0:
        raise CloudError("condor_reconfig -daemon negotiator failed: %s" % " ".join(p.stdout.split())[:300])


def _quota_value(field, text):
    """An option's value for quotas.set_user: 'default' (drop the override), None (unlimited) or a number."""
    from condor_cloud.master import quotas

    if text.strip().lower() == "default":
        return "default"
    if field == "memory_mib":
        return quotas.parse_size_mib(text)
    return quotas.parse_count(field, text)


@user_group.command("quota")
@click.argument("name")
@click.option("--instances", metavar="N|unlimited|default", help="Most running instances.")
@click.option("--cpus", metavar="N|unlimited|default", help="Most vCPUs of running instances.")
@click.option("--memory", metavar="SIZE|unlimited|default",
              help="Most memory of running instances: MiB, or with a unit M, G, T (8G).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_quota(name, instances, cpus, memory, as_json):
    """Show or set the quota of user NAME (an API user or a Unix account that submits by hand).

    Without options: show it. With options (as root): write the overrides file (CLOUD_QUOTA_FILE) and reconfigure
    the negotiator, which enforces it from its next cycle; 'default' goes back to the pool-wide default
    (CLOUD_QUOTA_*), 'unlimited' lifts the limit. Running instances are never stopped: a lower quota only keeps
    new ones PENDING."""
    from condor_cloud.master import quotas
    from condor_cloud.master.config import quota_file

    changes = {f: v for f, v in (("instances", instances), ("cpus", cpus), ("memory_mib", memory)) if v is not None}
    with cloud_errors():
        quotas.check_user_name(name)
        defaults, qf = _quota_state()
        if changes:
            values = {f: _quota_value(f, v) for f, v in changes.items()}
            path = quota_file()
            qf = quotas.set_user(qf, name, **values)
            try:
                quotas.save(path, qf)
            except OSError as exc:
                fail("cannot write %s: %s; nothing was changed%s" % (path, exc.strerror or exc,
                     " (run as root)" if exc.errno in (errno.EACCES, errno.EPERM) else ""))
            if _userfile().get(name) is None:
                click.echo("note: %s is not a user of the API; the quota applies to the Unix account's own "
                           "condor_submit jobs" % name, err=True)
            try:
                _reconfig_negotiator()
            except CloudError as exc:
                fail("%s was written, but the negotiator was not reconfigured (%s): run 'condor_reconfig' on the "
                     "central manager for the new quota to apply" % (path, exc))
        quota = quotas.quota_of(name, defaults, qf)
        own = qf.users.get(name, {})
    if as_json:
        print_json({"name": name, "quota": quotas.quota_dict(quota), "overrides": [f for f in quotas.FIELDS
                                                                                  if f in own]})
        return
    click.echo("quota of %s%s: %s" % (name, " set" if changes else "",
                                       ", ".join("%s %s%s" % (label, quotas.format_quota_value(f, getattr(quota, f)),
                                                              "" if f in own else " (default)")
                                                 for f, label in zip(quotas.FIELDS, ("instances", "vCPUs", "memory")))))


def _caller():
    """The account running the command: root (uid 0) is the administrator and sees everyone's usage."""
    return "root" if os.geteuid() == 0 else getpass.getuser()


@main_group.command("usage")
@click.option("--since", metavar="DATE", help="Start (YYYY-MM-DD[THH:MM[:SS]], local time; default: the first of "
              "this month).")
@click.option("--until", metavar="DATE", help="End (default: now).")
@click.option("--user", "user", metavar="NAME", help="Only this user (root: anybody; others: themselves only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def usage_cmd(since, until, user, as_json):
    """Instances, instance-hours, vCPU-hours and GiB-hours of each user over a period, from the schedd's queue and
    history (running instances count up to now). Root sees every user; anybody else only themselves.

    An instance-hour is an hour of an instance's runs: from the start of its job's run on a node (image staging
    and boot included) to its end; time spent PENDING or held is not counted (docs/fedora_install.txt)."""
    from condor_cloud.master import quotas, usage

    caller = _caller()
    if caller != "root":
        if user not in (None, caller):
            fail("you can see only your own usage (%s); root sees everybody's" % caller)
        user = caller
    now = time.time()
    with cloud_errors():
        if user is not None:
            quotas.check_user_name(user)
        start, end = usage.period(since, until, now)
        used = _jobs().usage(start, end, now, user)
    entries = [used[name] for name in sorted(used)]
    total = usage.totals(entries)
    if as_json:
        print_json({"since": usage.iso(start), "until": usage.iso(min(end, now)),
                    "users": [e.as_dict() for e in entries], "total": total.as_dict()})
        return
    click.echo("usage from %s to %s" % (_local(start), _local(min(end, now))))
    line = "%-32s %9s %7s %14s %10s %9s"
    click.echo(line % ("USER", "INSTANCES", "RUNNING", "INSTANCE-HOURS", "VCPU-HOURS", "GIB-HOURS"))
    for e in entries + ([total] if len(entries) != 1 else []):
        click.echo(line % ("(all users)" if e is total else e.user, e.instances, e.running,
                           "%.2f" % e.instance_hours, "%.2f" % e.vcpu_hours, "%.2f" % e.memory_gib_hours))


def _local(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


# -- the EC2 API's access keys ---------------------------------------------------------------------------
@user_group.group("access-key")
def access_key_group():
    """Access keys of the EC2 Query API (CLOUD_EC2_ACCESS_KEYS); the secret is shown once, at creation."""


def _access_keys():
    from condor_cloud.master.access_keys import AccessKeyStore
    from condor_cloud.master.ec2.config import load_access_keys_path

    return AccessKeyStore(load_access_keys_path())


@access_key_group.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the secret).")
def access_key_create(name, as_json):
    """Create an access key for user NAME and print its id and secret (shown only now)."""
    with cloud_errors():
        if _userfile().get(name) is None:
            fail("no user %s (add it with 'condor-cloud user add %s')" % (name, name))
        key = _access_keys().create(name)
    if as_json:
        print_json(dict(key.public(), secret=key.secret))
        return
    click.echo("access key of %s (the secret is shown only now):" % name)
    click.echo("  aws_access_key_id = %s" % key.id)
    click.echo("  aws_secret_access_key = %s" % key.secret)


@access_key_group.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def access_key_list(name, as_json):
    """List the access keys of user NAME (default: everybody's), never their secrets."""
    import datetime

    with cloud_errors():
        keys = _access_keys().list(name)
    if as_json:
        print_json([k.public() for k in keys])
        return
    for k in keys:
        created = datetime.datetime.fromtimestamp(k.created, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        click.echo("%-20s %-32s %s" % (k.id, k.user, created))


@access_key_group.command("delete")
@click.argument("name")
@click.argument("key_id", required=False)
@click.option("--all", "delete_all", is_flag=True, help="Delete every access key of NAME.")
def access_key_delete(name, key_id, delete_all):
    """Delete access key KEY_ID of user NAME (or all of NAME's keys with --all)."""
    if bool(key_id) == delete_all:
        fail("give either KEY_ID or --all")
    with cloud_errors():
        if delete_all:
            count = _access_keys().delete_user(name)
            click.echo("deleted %d access key%s of %s" % (count, "" if count == 1 else "s", name))
        else:
            _access_keys().delete(key_id, user=name)
            click.echo("deleted access key %s of %s" % (key_id, name))


# -- the API's TLS certificate -------------------------------------------------------------------------
@main_group.group("api-cert")
def api_cert_group():
    """The API's TLS certificate (CLOUD_API_TLS_CERT, CLOUD_API_TLS_KEY)."""


def _print_cert(info, verb):
    from condor_cloud.master.config import load_listen

    with cloud_errors():
        port = load_listen()[1]
    host = (info.names or info.addresses or ("HOST",))[0]
    click.echo("%s %s" % (verb, info.path))
    click.echo("  subject:             %s" % info.subject)
    click.echo("  names:               %s" % (", ".join(info.names + info.addresses) or "-"))
    click.echo("  valid until:         %s%s" % (info.not_after, "  (EXPIRED)" if info.expired else ""))
    click.echo("  SHA-256 fingerprint: %s" % info.sha256)
    click.echo("  public key pin:      sha256//%s" % info.spki_sha256)
    click.echo("clients trust this file, or pin the fingerprint (curl --pinnedpubkey takes the key pin):")
    click.echo("  curl --cacert %s -u USER https://%s:%d/api" % (info.path, host, port))


@api_cert_group.command("create")
@click.option("--host", "hosts", multiple=True, metavar="NAME",
              help="A host name clients use (repeatable; default: this host's names and localhost).")
@click.option("--address", "addresses", multiple=True, metavar="IP",
              help="An address clients use (repeatable; default: the loopback addresses and what the names "
                   "resolve to).")
@click.option("--days", type=click.IntRange(1), help="Validity in days (default 825, the longest Apple's clients "
              "accept).")
@click.option("--group", help="Group that may read the key (default: condor-cloud-api, the API's account).")
@click.option("--force", is_flag=True, help="Replace an existing certificate and key.")
@click.option("--if-missing", is_flag=True, help="Do nothing if both files exist; create them only at the default "
              "paths (the service's first start).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def api_cert_create(hosts, addresses, days, group, force, if_missing, as_json):
    """Create a key and a self-signed certificate for this host's API; print its fingerprints.

    Run as root. Restart the API afterwards (systemctl restart condor-cloud-api) and give clients the
    certificate file (it is their CA: curl --cacert, REQUESTS_CA_BUNDLE) or its fingerprint."""
    from condor_cloud.master import tls
    from condor_cloud.master.config import DEFAULTS, load_tls_paths

    if force and if_missing:
        fail("use either --force or --if-missing")
    with cloud_errors():
        cert, key = load_tls_paths()
        if if_missing and os.path.exists(cert) and os.path.exists(key):
            info, verb = tls.describe(cert), "kept"
        elif if_missing and (cert, key) != (DEFAULTS["CLOUD_API_TLS_CERT"], DEFAULTS["CLOUD_API_TLS_KEY"]):
            # The administrator named their own files: a missing one is their mistake, not a first start.
            fail("CLOUD_API_TLS_CERT/CLOUD_API_TLS_KEY name %s and %s, which do not both exist; not creating a "
                  "self-signed certificate there (without --if-missing this command does)" % (cert, key))
        else:
            names = list(hosts) or tls.default_names()
            ips = list(addresses) or [str(a) for a in tls.default_addresses(names)]
            info = tls.create(cert, key, names, ips, days=days or tls.DEFAULT_DAYS, group=group or tls.API_GROUP,
                              force=force)
            verb = "created"
    if as_json:
        print_json(dict(info.as_dict(), key=key, action=verb))
    else:
        _print_cert(info, verb)


@api_cert_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def api_cert_show(as_json):
    """Show the API's certificate: names, validity, SHA-256 fingerprint and public key pin."""
    from condor_cloud.master import tls
    from condor_cloud.master.config import load_tls_paths

    with cloud_errors():
        cert, _key = load_tls_paths()
        info = tls.describe(cert)
    if as_json:
        print_json(info.as_dict())
    else:
        _print_cert(info, "certificate")
