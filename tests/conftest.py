import os
import tempfile

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One warm-start cache per test session, so the tests never touch the user's ~/.cache.
os.environ.setdefault("STEERBENCH_CACHE", tempfile.mkdtemp(prefix="steerbench-test-cache-"))
