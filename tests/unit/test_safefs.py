"""safefs as an attacker would test it: real symlinks to a "host file" that must stay as it
was, real FIFOs and unix sockets, a directory swapped for a link while it is open."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hyperhive.hive import safefs

SECRET = b"root:x:0:0:host secret\n"


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """A file outside the agent's tree that no operation may change or reveal."""
    f = tmp_path / "host" / "secret"
    f.parent.mkdir()
    f.write_bytes(SECRET)
    f.chmod(0o600)
    return f


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The agent-controlled tree (what an agent's /state or /agents is)."""
    d = tmp_path / "agent"
    d.mkdir()
    return d


@pytest.fixture
def top(tree: Path) -> Iterator[safefs.Dir]:
    with safefs.root(tree, "agent") as d:
        yield d


def unchanged(host_file: Path) -> bool:
    st = host_file.stat()
    return host_file.read_bytes() == SECRET and stat.S_IMODE(st.st_mode) == 0o600


def finishes(fn: Callable[[], object], timeout: float = 30) -> BaseException | None:
    """Run `fn` in a thread; fail if it is still blocked after `timeout` (it would hang on a
    FIFO); return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:
            raised.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked: it opened something an agent planted"
    return raised[0] if raised else None


def unix_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def test_reading_a_symlink_to_a_host_file_is_refused(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "notes").symlink_to(host_file)
    with pytest.raises(safefs.UnsafePath, match=r"^agent/notes is a symlink, not a regular file"):
        top.read_bytes("notes", 1024)


def test_a_fifo_is_refused_without_being_opened(top: safefs.Dir, tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    err = finishes(lambda: top.read_bytes("pipe", 1024))
    assert isinstance(err, safefs.UnsafePath) and "agent/pipe is a FIFO" in str(err)


def test_a_unix_socket_is_refused(top: safefs.Dir, tree: Path) -> None:
    unix_socket(tree / "sock")
    with pytest.raises(safefs.UnsafePath, match="agent/sock is a socket"):
        top.read_bytes("sock", 1024)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_is_refused(top: safefs.Dir, tree: Path) -> None:
    os.mknod(tree / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    with pytest.raises(safefs.UnsafePath, match="agent/null is a character device"):
        top.read_bytes("null", 1024)


def test_a_regular_file_is_read_up_to_its_limit(top: safefs.Dir, tree: Path) -> None:
    (tree / "f").write_bytes(b"x" * 100)
    assert top.read_bytes("f", 100) == b"x" * 100
    with pytest.raises(safefs.TooLarge, match="agent/f is larger than 99 bytes"):
        top.read_bytes("f", 99)


def test_a_symlinked_directory_is_refused_at_every_level(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "a").mkdir()
    (tree / "a" / "b").symlink_to(host_file.parent, target_is_directory=True)
    with pytest.raises(safefs.UnsafePath, match=r"agent/a/b is a symlink, not a directory"):
        top.walk("a", "b")
    with pytest.raises(safefs.UnsafePath, match=r"agent/a/b is a symlink"):
        top.walk("a", "b", "secret")
    os.mkfifo(tree / "a" / "pipe")
    err = finishes(lambda: top.subdir("a").subdir("pipe"))
    assert isinstance(err, safefs.UnsafePath) and "agent/a/pipe is a FIFO" in str(err)
    with pytest.raises(FileNotFoundError):
        top.walk("a", "missing")


def test_write_replace_replaces_a_planted_link_and_never_writes_through_it(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "model").symlink_to(host_file)
    # every temp name a predictable writer might use, planted too
    (tree / ".model.tmp").symlink_to(host_file)
    top.write_replace("model", b"claude-x\n")
    assert unchanged(host_file)
    assert not (tree / "model").is_symlink() and (tree / "model").read_bytes() == b"claude-x\n"
    assert stat.S_IMODE((tree / "model").stat().st_mode) == 0o644
    assert (tree / ".model.tmp").is_symlink()  # not touched, not used
    assert sorted(p.name for p in tree.iterdir()) == [".model.tmp", "model"]


def test_write_replace_over_a_fifo_or_socket_replaces_it(top: safefs.Dir, tree: Path) -> None:
    os.mkfifo(tree / "model")
    assert finishes(lambda: top.write_replace("model", b"a\n")) is None
    assert (tree / "model").read_bytes() == b"a\n"
    (tree / "model").unlink()
    unix_socket(tree / "model")
    top.write_replace("model", b"b\n")
    assert (tree / "model").read_bytes() == b"b\n"


def test_write_replace_over_a_directory_is_refused_and_leaves_no_temp_file(
    top: safefs.Dir, tree: Path
) -> None:
    (tree / "model").mkdir()
    (tree / "model" / "keep").write_text("x")
    with pytest.raises(safefs.UnsafePath, match="agent/model is a directory, not a regular file"):
        top.write_replace("model", b"x\n")
    assert sorted(p.name for p in tree.iterdir()) == ["model"]
    assert (tree / "model" / "keep").read_text() == "x"


def test_unlink_removes_the_link_not_its_target(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "model").symlink_to(host_file)
    assert top.unlink("model") is True
    assert not (tree / "model").is_symlink() and unchanged(host_file)
    assert top.unlink("model") is False
    (tree / "d").mkdir()
    with pytest.raises(safefs.UnsafePath, match="agent/d is a directory"):
        top.unlink("d")


def test_an_open_directory_swapped_for_a_link_keeps_writing_to_the_original(
    tree: Path, host_file: Path
) -> None:
    (tree / "state").mkdir()
    with safefs.root(tree, "agent") as top, top.subdir("state") as state:
        # the agent moves the directory away and puts a link to a host dir in its place
        (tree / "state").rename(tree / "state.old")
        (tree / "state").symlink_to(host_file.parent, target_is_directory=True)
        state.write_replace("secret", b"overwritten?\n")
        with pytest.raises(safefs.UnsafePath, match="agent/state is a symlink"):
            top.subdir("state")
    assert unchanged(host_file)
    assert (tree / "state.old" / "secret").read_bytes() == b"overwritten?\n"


def test_remove_tree_removes_links_and_special_files_never_their_targets(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    victim = tree / "victim"
    (victim / "deep" / "er").mkdir(parents=True)
    (victim / "deep" / "er" / "file").write_text("x")
    (victim / "deep" / "to-host-dir").symlink_to(host_file.parent, target_is_directory=True)
    (victim / "to-host-file").symlink_to(host_file)
    os.mkfifo(victim / "pipe")
    unix_socket(victim / "sock")
    assert finishes(lambda: top.remove_tree("victim")) is None
    assert not victim.exists()
    assert unchanged(host_file) and sorted(os.listdir(host_file.parent)) == ["secret"]
    # the entry itself a link to a host directory: the link goes, the directory stays
    (tree / "linked").symlink_to(host_file.parent, target_is_directory=True)
    top.remove_tree("linked")
    assert not (tree / "linked").is_symlink() and unchanged(host_file)
    top.remove_tree("missing")  # nothing there: nothing to do


def test_rename_moves_the_entry_itself(top: safefs.Dir, tree: Path, host_file: Path) -> None:
    (tree / "a").symlink_to(host_file)
    (tree / "dst").mkdir()
    with top.subdir("dst") as dst:
        top.rename("a", dst, "b")
    assert (tree / "dst" / "b").is_symlink() and unchanged(host_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_directory_owned_by_someone_else_is_refused(tree: Path) -> None:
    (tree / "state").mkdir()
    os.chown(tree / "state", 65534, -1)
    with (
        safefs.root(tree, "agent") as top,
        top.subdir("state") as d,
        pytest.raises(safefs.UnsafePath, match="alice's state dir agent/state is owned by uid"),
    ):
        d.require_owner(0, "alice's state dir")


def test_names_with_a_slash_are_not_entries(top: safefs.Dir) -> None:
    for bad in ("a/b", "..", ".", "", "x\0"):
        with pytest.raises(ValueError):
            top.lstat(bad)


# owners ---------------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def _owners(tree: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in sorted(tree.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(tree))] = (st.st_uid, st.st_gid)
    st = tree.lstat()
    out["."] = (st.st_uid, st.st_gid)
    return out


@needs_root
def test_chown_tree_changes_entries_themselves_and_never_a_links_target(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    (tree / "link").symlink_to(host_file)
    (tree / "dirlink").symlink_to(host_file.parent, target_is_directory=True)
    os.mkfifo(tree / "pipe")
    unix_socket(tree / "sock")
    left = top.chown_tree(lambda st: (st.st_uid + 4000, st.st_gid + 5000))
    assert left == []
    assert set(_owners(tree).values()) == {(4000, 5000)}
    assert unchanged(host_file) and host_file.stat().st_uid == 0
    assert host_file.parent.stat().st_uid == 0


@needs_root
def test_chown_tree_keeps_device_nodes_and_what_the_owner_declines(
    top: safefs.Dir, tree: Path
) -> None:
    os.mknod(tree / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (tree / "theirs").write_text("x")
    os.chown(tree / "theirs", 200000, 200000)
    (tree / "mine").write_text("x")
    left = top.chown_tree(lambda st: (4000, 4000) if st.st_uid == 0 else None)
    assert sorted(left) == ["agent/null", "agent/theirs"]
    assert _owners(tree) == {
        ".": (4000, 4000),
        "mine": (4000, 4000),
        "null": (0, 0),
        "theirs": (200000, 200000),
    }


def test_chown_tree_refuses_a_tree_deeper_than_it_descends(top: safefs.Dir, tree: Path) -> None:
    deep = tree
    for _ in range(safefs.MAX_DEPTH + 1):
        deep = deep / "d"
    deep.mkdir(parents=True)
    ids = (os.geteuid(), os.getegid())
    with pytest.raises(safefs.UnsafePath, match="nested more than 64 directories deep"):
        top.chown_tree(lambda st: ids)


@needs_root
def test_chown_entry_pins_the_entry_and_refuses_a_device(
    top: safefs.Dir, tree: Path, host_file: Path
) -> None:
    (tree / "link").symlink_to(host_file)
    st = top.chown_entry("link", lambda st: (4000, 4000))
    assert st is not None and stat.S_ISLNK(st.st_mode)
    assert (tree / "link").lstat().st_uid == 4000 and host_file.stat().st_uid == 0
    os.mknod(tree / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    with pytest.raises(safefs.UnsafePath, match="agent/null is a character device"):
        top.chown_entry("null", lambda st: (4000, 4000))
    assert (tree / "null").lstat().st_uid == 0
    assert top.chown_entry("missing", lambda st: (4000, 4000)) is None


@needs_root
def test_write_replace_gives_the_new_file_its_owner(top: safefs.Dir, tree: Path) -> None:
    top.write_replace("model", b"claude-x\n", 0o644, owner=(4000, 4001))
    st = (tree / "model").lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4000, 4001, 0o644)
