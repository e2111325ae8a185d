"""Online mixing sessions over the catalog: a training job asks for batches and reports losses.

The bandit (:mod:`curate.algorithms.bandit`) is pure; this module gives it a home that survives
restarts and serves several processes at once. Every mutation (``next``, ``feedback``) runs in
one transaction that first locks the session row (``SELECT … FOR UPDATE`` on Postgres,
``BEGIN IMMEDIATE`` on SQLite), so concurrent data-parallel workers are serialised: no record
is handed out twice within a domain's epoch and no update is lost.

Steps: every ``next`` call is one bandit step (``t`` in ε_t), numbered by the server. Feedback
must arrive in step order (a 409 names the expected step); batches may be fetched ahead of the
feedback (data-parallel workers, prefetching), and each step's loss is importance-weighted by
the π its batch was drawn with. Warm-up steps still need their (ignored) feedback, so that the
expected step always advances. A step whose worker died is skipped once it is older than
``step_timeout_s`` and a later step reports: its batch is spent, its losses are never applied, and a
late report of it is answered (``expired``), not refused, so a merely slow worker does not crash.

Records are drawn per group from a seeded permutation of that group (one per epoch, reshuffled
each epoch). Only ``(group, epoch, position, count)`` is stored per micro-batch, so the records
of any step are recomputable, the catalog stays small, and the permutations can be cached in
memory by any process without coordination.
"""

from curate.mixing.freeze import SELECTOR_REF, freeze
from curate.mixing.session import create_session, feedback, get_session, next_batch
from curate.mixing.store import MixingSessionRow, MixingStepRow

__all__ = [
    "SELECTOR_REF",
    "MixingSessionRow",
    "MixingStepRow",
    "create_session",
    "feedback",
    "freeze",
    "get_session",
    "next_batch",
]
