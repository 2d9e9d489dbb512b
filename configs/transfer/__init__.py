"""Transfer targets for the offline transfer study (studies.transfer.run)."""
