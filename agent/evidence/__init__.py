"""Evidence on the unit: the pre-event buffer, segment recording with a signed manifest,
crash recovery, bounded disk use and the resumable upload to the center."""
