"""AnoDFDNet: anomaly detection as the abnormal difference between a history and a current image."""

__version__ = "0.1.0"
