"""Safe local default (issue 16, item 10).

``streamlit run app.py`` (the README's first command) listens on 127.0.0.1 only and runs no file watcher; the
Docker image listens on every interface explicitly; the sidebar says "do not expose it" exactly when a
single-user instance listens beyond this computer.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from tests.browser import streamlit_server
from tests.conftest import REPO_ROOT
from ui.auth import listens_beyond_this_computer


def _config_in_repo(env_extra: dict[str, str] | None = None) -> tuple[str, str]:
    """``server.address`` and ``server.fileWatcherType`` as Streamlit reads them from the repository root."""
    code = (
        "from streamlit import config as c; "
        "print(c.get_option('server.address'), c.get_option('server.fileWatcherType'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return out[0], out[1]


def test_config_listens_on_loopback_without_file_watcher():
    assert _config_in_repo() == ("127.0.0.1", "none")


def test_dockerfile_listens_on_every_interface_explicitly():
    cmd = [line for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")]
    assert len(cmd) == 1 and "--server.address=0.0.0.0" in cmd[0], cmd


@pytest.mark.parametrize(
    ("address", "exposed"),
    [
        (None, True),
        ("", True),
        ("0.0.0.0", True),
        ("::", True),
        ("192.0.2.7", True),
        ("lab-server.example.org", True),
        ("127.0.0.1", False),
        ("127.0.1.1", False),
        ("::1", False),
        ("[::1]", False),
        ("localhost", False),
    ],
)
def test_which_addresses_reach_beyond_this_computer(address, exposed):
    assert listens_beyond_this_computer(address) is exposed


@pytest.fixture()
def server_address():
    """Set ``server.address`` for one AppTest run and put the previous value back afterwards."""
    before = st_config.get_option("server.address")
    yield lambda value: st_config.set_option("server.address", value)
    st_config.set_option("server.address", before)


def _sidebar_texts(at) -> tuple[list[str], list[str]]:
    return [w.value for w in at.sidebar.warning], [c.value for c in at.sidebar.caption]


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1"])
def test_sidebar_warns_only_when_single_user_listens_everywhere(app_test, server_address, address):
    server_address(address)
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    warnings, captions = _sidebar_texts(at)
    if address == "0.0.0.0":
        assert len(warnings) == 1 and "Do not expose it" in warnings[0], warnings
        assert "every network interface" in warnings[0] and "COSNET_AUTH" in warnings[0]
        assert not any("no login is configured" in c for c in captions)
    else:
        assert not any("expose" in w for w in warnings), warnings
        assert any("Single-user mode on this computer" in c for c in captions), captions


def _identity_script(mode: str) -> None:
    from ui.auth import CurrentUser, sidebar_identity

    sidebar_identity(CurrentUser("ann", False, mode))


def test_sidebar_does_not_warn_with_accounts_on_every_interface(server_address):
    server_address("0.0.0.0")
    at = AppTest.from_function(_identity_script, args=("accounts",))
    at.run()
    assert not at.exception
    assert not at.sidebar.warning
    assert [c.value for c in at.sidebar.caption] == ["Logged in as ann."]


def _network_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without a network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_readme_command_serves_on_loopback_only(tmp_path):
    """``streamlit run app.py`` with no address flag: healthy on 127.0.0.1, refused on the network address."""
    assert "streamlit run app.py" in (REPO_ROOT / "README.md").read_text().split("```")[1]
    network = _network_address()
    if network is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try a connection on")
    log = tmp_path / "streamlit.log"
    with streamlit_server(
        REPO_ROOT / "app.py", env={"COSNET_DATA_DIR": str(tmp_path / "data")}, log_path=log, address_flag=False
    ) as url:
        port = int(url.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            with pytest.raises(OSError):
                sock.connect((network, port))
    assert "127.0.0.1" in log.read_text()
