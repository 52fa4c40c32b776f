"""The master's library (condor-cloud): instances as schedd jobs, users, SSH key store, EC2 access keys, the
administrator CLI, the Deltacloud API (api/) and the EC2 Query API (ec2/), both run as condor-cloud-api.
Imports condor_cloud.core, never condor_cloud.node."""
