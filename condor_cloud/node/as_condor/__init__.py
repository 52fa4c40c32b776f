"""Run as condor by the condor_startd: the periodic cleanup (STARTD_CRON job CLOUDCLEANUP, hooks/cleanup)."""
