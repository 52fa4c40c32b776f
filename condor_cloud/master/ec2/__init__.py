"""condor-cloud-ec2: the EC2 Query API (version 2016-11-15) next to the Deltacloud API, on the same job layer
(instances_api.CloudJobs), with the same users, SSH keys and per-user isolation. See docs/EC2.txt.

`create_app()` builds the WSGI application; everything it talks to can be injected, so unit tests drive it with
werkzeug's test client and a fake schedd.
"""


def create_app(settings=None, users=None, keys=None, access_keys=None, jobs=None, clock=None, lock_dir=None):
    import time

    from condor_cloud.master.access_keys import AccessKeyStore
    from condor_cloud.master.api.app import default_jobs
    from condor_cloud.master.keys import KeyStore
    from condor_cloud.master.users import UserFile
    from condor_cloud.master.ec2.app import Ec2App
    from condor_cloud.master.ec2.jobs import Ec2Jobs

    if settings is None:
        from condor_cloud.master.ec2.config import load_ec2_settings

        settings = load_ec2_settings()
    if jobs is None:
        factory = default_jobs(settings.api)._schedd_factory
        jobs = Ec2Jobs(factory, api_account=settings.api.api_account)
    if lock_dir is None:
        from condor_cloud.master.api.state import StateError, default_dir

        try:
            lock_dir = default_dir()
        except StateError:   # only ClientToken launches need it; they then go unlocked
            lock_dir = None
    return Ec2App(settings, users or UserFile(settings.api.users_file), keys or KeyStore(settings.api.keys_dir),
                  access_keys or AccessKeyStore(settings.access_keys), jobs, clock=clock or time.time,
                  lock_dir=lock_dir)
