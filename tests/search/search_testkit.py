"""Trial functions for the search tests (imported by name in worker processes and Ray tasks)."""
import os
import signal
import time


def reward_of(tokens):
    """A deterministic stand-in for an accuracy: the share of 1-tokens."""
    return sum(tokens) / len(tokens)


def slow_trial(spec):
    time.sleep(0.1)
    out = {"reward": reward_of(spec["tokens"]), "seconds": 0.1, "pid": os.getpid()}
    if spec.get("with_test"):
        out["test"] = {"top1": 0.5}
    return out


def faulty_trial(spec):
    """layers-tiny tokens: the first two decide what goes wrong."""
    kind = 2 * spec["tokens"][0] + spec["tokens"][1]
    if kind == 0:
        raise ValueError("this architecture is broken")
    if kind == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # a hard crash: no Python error, no result
    if kind == 2:
        time.sleep(120)  # hangs until the timeout stops it
    return {"reward": reward_of(spec["tokens"])}
