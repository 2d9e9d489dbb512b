"""Transfer targets for the offline transfer study (big_vision_like.tools.transfer_study)."""
