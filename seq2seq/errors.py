"""The one exception type users see.

Every error a user can cause (a bad config key, a malformed data line, a missing
file, an existing run directory) is raised as :class:`Seq2SeqError` with a message
that names the file, line or key and says what to change.  The CLI prints that
message on one line and exits with status 2, never with a traceback.
"""


class Seq2SeqError(Exception):
    """A problem with the user's input (config, data, paths), not a bug.

    The message is complete on its own: ``"data/train.tsv:17: no tab between
    source and target"``.
    """
