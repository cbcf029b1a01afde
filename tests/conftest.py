import contextlib
import http.server
import os
import threading

import pytest
import torch

# Two cores: keep PyTorch from oversubscribing them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@contextlib.contextmanager
def local_http_server(handler):
    """A threaded HTTP server with ``handler`` on an ephemeral 127.0.0.1 port (its address
    as ``.url``), shut down on exit: the downloads' tests serve their files from it."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
