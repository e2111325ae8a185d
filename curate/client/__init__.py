"""HTTP clients: :class:`CurateClient` for pools, jobs and manifests; :class:`MixingSession` for
training jobs that drive an online-mixing session."""

from curate.client.mixing import Batch, MixingError, MixingSession
from curate.client.service import APIError, CurateClient, JobFailed, error_from_response

__all__ = ["APIError", "Batch", "CurateClient", "JobFailed", "MixingError", "MixingSession", "error_from_response"]
