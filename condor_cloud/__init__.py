"""Condor Cloud: a private IaaS cloud built on HTCondor's VM universe."""
