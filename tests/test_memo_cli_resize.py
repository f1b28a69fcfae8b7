"""``combinators archive rm`` while another process grows the archive (issue 21, item 7)."""

import argparse
import subprocess
import sys
import textwrap

import lmdb

from combinators.memo import LMDBArchive, cli

#: another process writes 16 MB into the archive, growing its map past what a reader that opened before mapped
_GROW = textwrap.dedent("""
    import os, sys, lmdb
    env = lmdb.open(sys.argv[1], max_dbs=4)
    db = env.open_db(b"other")
    for k in range(1024):
        while True:
            try:
                with env.begin(write=True, db=db) as txn:
                    txn.put(b"grow%d" % k, os.urandom(16384))
                break
            except lmdb.MapFullError:
                env.set_mapsize(2 * env.info()["map_size"])
""")


def test_archive_rm_adopts_a_map_another_process_grew_meanwhile(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "a.lmdb")
    with LMDBArchive(path, map_size=64 * 1024) as archive:
        archive[b"x"] = 1
    real_open, grown = lmdb.open, []

    def open_then_grow(*args, **kwargs):
        env = real_open(*args, **kwargs)
        if not grown:  # the first environment the command opens: the file grows before its first transaction
            subprocess.run([sys.executable, "-c", _GROW, path], check=True, timeout=120)
            grown.append(True)
        return env

    monkeypatch.setattr(lmdb, "open", open_then_grow)
    args = argparse.Namespace(action="rm", path=path, function="nothing*", version=None, older_than=None,
                              dry_run=False)
    assert cli.run(args) == 0, capsys.readouterr().err
    assert grown and capsys.readouterr().out.strip() == "removed 0 entries"
    monkeypatch.undo()
    with LMDBArchive(path, readonly=True) as archive:
        assert archive[b"x"] == 1
