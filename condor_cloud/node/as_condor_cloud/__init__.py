"""The starter's job hooks, run as the execute account condor-cloud (STARTER_ALLOW_RUNAS_OWNER = False)."""
