"""The key file on a real file system: its directory is made 0700, a planted link is never followed, and a directory
or file another user owns or may write to is refused by name (issue 17, item 1).

We run as root here, so "another user" is made with ``os.chown`` to an unused uid, which root may do.
"""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from wcode_magic.core import keys
from wcode_magic.core.errors import ConfigurationError, WcodeWarning

KEY = "sk-test-0123456789abcdefghij"
OTHER_UID = 54321


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A config dir that does not exist yet, under a private tmp dir; no key in the environment."""
    monkeypatch.delenv("WCODE_API_KEY", raising=False)
    path = tmp_path / "conf" / "wcode-magic"
    monkeypatch.setenv("WCODE_CONFIG_DIR", str(path))
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_save_creates_a_private_dir_and_file_whatever_the_umask(cfg, umask):
    old = os.umask(umask)
    try:
        path = keys.save_key(KEY)
    finally:
        os.umask(old)
    assert path == cfg / "key"
    assert mode(cfg) == 0o700
    assert mode(path) == 0o600
    assert path.read_text() == KEY
    assert keys.stored_key().reveal() == KEY
    assert [p.name for p in cfg.iterdir()] == ["key"]  # no temporary file left behind


def test_save_replaces_a_planted_link_instead_of_writing_through_it(cfg, tmp_path):
    cfg.mkdir(parents=True, mode=0o700)
    for target in (tmp_path / "attacker-readable", tmp_path / "missing-target"):
        if target.name == "attacker-readable":
            target.write_text("theirs")
            target.chmod(0o644)
        (cfg / "key").symlink_to(target)
        keys.save_key(KEY)
        assert not (cfg / "key").is_symlink()
        assert (cfg / "key").read_text() == KEY
        assert not target.exists() or target.read_text() == "theirs"  # the link's target is untouched
        (cfg / "key").unlink()


def test_save_overwrites_an_old_key_atomically(cfg):
    keys.save_key("sk-old-key-aaaaaaaaaaaaaaaa")
    inode = os.stat(cfg / "key").st_ino
    keys.save_key(KEY)
    assert (cfg / "key").read_text() == KEY
    assert os.stat(cfg / "key").st_ino != inode  # a new file renamed into place, not the old one truncated


@pytest.mark.parametrize(
    ("dir_mode", "owner", "why"),
    [
        (0o777, None, "writable by other users (mode 0777)"),
        (0o770, None, "writable by other users (mode 0770)"),
        (0o1777, None, "writable by other users (mode 1777)"),
        (0o700, OTHER_UID, f"owned by another user (uid {OTHER_UID})"),
    ],
)
def test_an_untrusted_dir_is_refused_for_saving_and_reading(cfg, dir_mode, owner, why):
    keys.save_key(KEY)
    os.chmod(cfg, dir_mode)
    if owner is not None:
        os.chown(cfg, owner, -1)
    with pytest.raises(ConfigurationError) as saving:
        keys.save_key("sk-new-key-bbbbbbbbbbbbbbbb")
    with pytest.raises(ConfigurationError) as reading:
        keys.stored_key()
    for e in (saving.value, reading.value):
        assert str(cfg) in e.message and why in e.message and "WCODE_CONFIG_DIR" in e.message
        assert KEY not in e.message
    os.chown(cfg, os.geteuid(), -1)
    os.chmod(cfg, 0o700)
    assert (cfg / "key").read_text() == KEY  # nothing was written while refused


def test_a_shared_dir_made_by_someone_else_is_not_used(cfg):
    cfg.mkdir(parents=True)
    os.chmod(cfg, 0o777)  # e.g. made under umask 000, or a shared WCODE_CONFIG_DIR
    with pytest.raises(ConfigurationError, match="writable by other users"):
        keys.save_key(KEY)
    assert not (cfg / "key").exists()


@pytest.mark.parametrize(
    ("file_mode", "owner", "why"),
    [
        (0o622, None, "writable by other users (mode 0622)"),
        (0o660, None, "writable by other users (mode 0660)"),
        (0o600, OTHER_UID, f"owned by another user (uid {OTHER_UID})"),
    ],
)
def test_an_untrusted_key_file_is_refused(cfg, file_mode, owner, why):
    keys.save_key(KEY)
    os.chmod(cfg / "key", file_mode)
    if owner is not None:
        os.chown(cfg / "key", owner, -1)
    with pytest.raises(ConfigurationError) as e:
        keys.stored_key()
    assert str(cfg / "key") in e.value.message and why in e.value.message and KEY not in e.value.message


def test_a_linked_key_file_is_not_followed_when_read(cfg, tmp_path):
    cfg.mkdir(parents=True, mode=0o700)
    theirs = tmp_path / "theirs"
    theirs.write_text("sk-someone-elses-key-cccccccc")
    theirs.chmod(0o600)
    (cfg / "key").symlink_to(theirs)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        keys.stored_key()
    assert keys.key_source() == str(cfg / "key")  # config still says where the (refused) key would come from
    assert keys.clear_key() and theirs.exists()  # the link is removed, its target left alone


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o644])
def test_a_key_file_readable_by_others_warns_as_ssh_does(cfg, file_mode):
    keys.save_key(KEY)
    os.chmod(cfg / "key", file_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert keys.stored_key().reveal() == KEY
    messages = [str(w.message) for w in caught if issubclass(w.category, WcodeWarning)]
    assert len(messages) == 1 and f"{file_mode:04o}" in messages[0] and "chmod 600" in messages[0]
    assert KEY not in messages[0]
    os.chmod(cfg / "key", 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert keys.stored_key().reveal() == KEY


def test_the_environment_key_wins_without_reading_the_file(cfg, monkeypatch):
    cfg.mkdir(parents=True)
    os.chmod(cfg, 0o777)  # would be refused if read
    monkeypatch.setenv("WCODE_API_KEY", KEY)
    assert keys.stored_key().reveal() == KEY


def test_no_file_means_no_key(cfg):
    assert keys.stored_key() is None and keys.key_source() is None and not keys.clear_key()


def test_the_commands_say_what_is_wrong_instead_of_raising(cfg, session, monkeypatch):
    from wcode_magic.core.settings import SESSION
    from wcode_magic.notebook import commands
    from wcode_magic.notebook.run import CellError

    SESSION.api_key = None
    keys.save_key(KEY)
    os.chmod(cfg, 0o777)
    shown = commands.dispatch("config")
    assert "unusable" in shown and "writable by other users" in shown and KEY not in shown
    monkeypatch.setattr("getpass.getpass", lambda prompt: "sk-new-key-dddddddddddddddd")
    with pytest.raises(CellError, match="writable by other users") as e:
        commands.dispatch("key")
    assert "sk-new-key" not in e.value.message and (cfg / "key").read_text() == KEY
