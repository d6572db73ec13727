"""Output paths are checked before any work, by every command that writes (issue 18, item 7)."""

from __future__ import annotations

import pytest

from rmtension.cli.common import check_out_dir, check_out_file
from rmtension.cli.main import main
from rmtension.errors import RmtensionError


def _refused(capsys, argv: list) -> str:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_helpers_refuse_files_folders_and_paths_under_files(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    d = tmp_path / "dir"
    d.mkdir()
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"  # created later, fine
    assert check_out_dir(d) == d and check_out_file(tmp_path / "a.json") == tmp_path / "a.json"
    with pytest.raises(RmtensionError, match="is a file, but an output folder is wanted"):
        check_out_dir(f)
    with pytest.raises(RmtensionError, match="is a folder, but an output file is wanted"):
        check_out_file(d)
    for check in (check_out_dir, check_out_file):
        with pytest.raises(RmtensionError, match="is a file, so nothing can be written under it"):
            check(f / "sub" / "x")


def test_train_refuses_an_existing_file_before_any_work(tmp_path, data_dir, capsys, monkeypatch):
    """Before: it trained to the end and then failed to save. Now nothing is built and no OUT.checkpoints appears."""
    import rmtension.models.reward_model as RM

    def no_model(*a, **k):
        raise AssertionError("a model was built although --out cannot be written")

    monkeypatch.setattr(RM, "build_reward_model", no_model)
    f = tmp_path / "rm"
    f.write_text("not a folder")
    base = ["train", "--backbone", "tiny-llama", "--objective", "harmless", "--seed", "0", "--data-dir", data_dir]
    assert "is a file" in _refused(capsys, [*base, "--out", f])
    assert "nothing can be written under it" in _refused(capsys, [*base, "--out", f / "sub"])
    assert not (tmp_path / "rm.checkpoints").exists() and not (f.parent / "sub.checkpoints").exists()
    # The checkpoint folder beside it is checked too.
    (tmp_path / "rm2.checkpoints").write_text("x")
    assert "checkpoint folder" in _refused(capsys, [*base, "--out", tmp_path / "rm2"])


def test_every_writing_command_checks_out_first(tmp_path, capsys):
    """eval, ablate, neurons score/select/combine/random-like and run refuse an unusable --out with one line, before
    reading their (here nonexistent) inputs: the message is about --out, not about the missing inputs."""
    f = tmp_path / "file"
    f.write_text("x")
    d = tmp_path / "dir"
    d.mkdir()
    missing = tmp_path / "missing"
    cfg = tmp_path / "study.yaml"
    cfg.write_text("name: t\nbackbones: [tiny-llama]\nobjectives: [helpful]\nseeds: [0]\n")
    folder_cmds = [
        ["eval", "--rm", missing, "--bench", "hh-heldout"],
        ["ablate", "--rm", missing, "--bench", "hh-heldout", "--sets", missing],
        ["run", cfg],
    ]
    for cmd in folder_cmds:
        assert "--out" in _refused(capsys, [*cmd, "--out", f])
        assert "nothing can be written under it" in _refused(capsys, [*cmd, "--out", f / "x"])
    file_cmds = [
        ["neurons", "score", "--rm", missing, "--data", "hh-rlhf:harmless"],
        ["neurons", "select", "--scores", missing],
        ["neurons", "combine", missing, missing, "--op", "union"],
        ["neurons", "random-like", missing, "--seed", "0"],
    ]
    for cmd in file_cmds:
        assert "is a folder, but an output file is wanted" in _refused(capsys, [*cmd, "--out", d])
        assert "nothing can be written under it" in _refused(capsys, [*cmd, "--out", f / "x.json"])


def test_run_with_out_the_configs_own_folder(tmp_path, capsys, monkeypatch):
    """`run OUT/config.yaml --out OUT` (rerunning a study from its own copy) no longer dies on copying the config
    onto itself (shutil.SameFileError)."""
    import rmtension.study.pipeline as P

    out = tmp_path / "study"
    out.mkdir()
    cfg = out / "config.yaml"
    cfg.write_text("name: t\nbackbones: [tiny-llama]\nobjectives: [helpful]\nseeds: [0]\nreport: {enabled: false}\n")
    monkeypatch.setattr(P, "execute", lambda plan, cell, echo, **kw: {"ran": 0, "cached": 0})
    monkeypatch.setattr(P, "write_summary", lambda plan: out / "summary.json")
    rc = main(["run", str(cfg), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert cfg.read_text().startswith("name: t")
