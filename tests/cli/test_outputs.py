"""The one writer of user-named outputs (lstmkit/files.py) and the verbs that use it.

Devices and FIFOs are made in the test's own folder (os.mknod of a null or full device, os.mkfifo with a reader
thread): no test writes to the machine's /dev. Read-only folders and a full disk are a private mount namespace
(`unshare --mount`), skipped where that is not allowed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lstmkit import files
from lstmkit.cli import main
from lstmkit.cli.output import default_output
from tests.helpers import ROOT, one_line_error


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: kind, mode and content hash (symlinks by target, devices and FIFOs by kind)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                seen[name if dirpath == str(root) else str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                seen[str(path)] = ("file", st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                seen[str(path)] = ("other", st.st_mode)
    return seen


def device(folder: Path, name: str, minor: int) -> Path:
    """A character device in `folder`: minor 3 is a null device, 7 a full one (ENOSPC on every write)."""
    path = folder / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot make a device node here: {error}")
    return path


class FifoReader:
    """A FIFO in `folder` with a thread that reads everything written to it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "pipe"
        os.mkfifo(self.path)
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the FIFO's reader never got an end of file"
        return self.data


# --- the writer, kind by kind ---------------------------------------------------------------------------------


def test_new_file_gets_plain_open_permissions_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "page.txt"
    files.write_output(target, "hello\n")
    assert target.read_text() == "hello\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.txt"]


def test_replacing_keeps_permissions_and_is_a_rename(tmp_path):
    target = tmp_path / "page.txt"
    target.write_text("old\n")
    target.chmod(0o640)
    inode = target.stat().st_ino
    files.write_output(target, b"new\n")
    assert target.read_bytes() == b"new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode, "expected a new file renamed over the old one, not a rewrite in place"


def test_replacing_another_users_file_keeps_its_owner(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    target = tmp_path / "page.txt"
    target.write_text("old\n")
    os.chown(target, 4321, 4322)
    files.write_output(target, "new\n")
    assert (target.stat().st_uid, target.stat().st_gid) == (4321, 4322) and target.read_text() == "new\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "page.txt"
    target.write_text("the user's page\n")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(ValueError, match=r"^cannot write .*page\.txt: No space left on device$"):
        files.write_output(target, "x" * 10_000)
    assert target.read_text() == "the user's page\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.txt"]


def test_symlink_is_followed_to_a_regular_file_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "page.txt"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    files.write_output(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new\n" and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real"]


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "nowhere" / "page.txt")
    with pytest.raises(ValueError, match=r"cannot write .*link\.txt: it is a symlink to .*which does not exist"):
        files.check_output_file(link)
    with pytest.raises(ValueError, match="which does not exist"):
        files.write_output(link, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt"] and link.is_symlink()


def test_character_device_is_written_through_never_replaced(tmp_path):
    null = device(tmp_path, "null", 3)
    files.write_output(null, "discarded\n" * 1000)
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    link = tmp_path / "to-null"
    link.symlink_to(null)
    files.write_output(link, "discarded\n")
    assert link.is_symlink() and stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "to-null"]


def test_a_full_device_is_one_line_and_stays_a_device(tmp_path):
    full = device(tmp_path, "full", 7)
    with pytest.raises(ValueError, match=r"^cannot write .*full: No space left on device$"):
        files.write_output(full, "x")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_fifo_is_written_through(tmp_path):
    fifo = FifoReader(tmp_path)
    payload = os.urandom(300_000)  # more than a pipe holds: the writer must loop until the reader has it all
    files.write_output(fifo.path, payload)
    assert fifo.result() == payload and stat.S_ISFIFO(os.lstat(fifo.path).st_mode)


def test_stdout_names_write_to_standard_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("-", "/dev/stdout", "/dev/fd/1"):
        files.write_output(name, f"to {name}\n")
    assert capsys.readouterr().out == "to -\nto /dev/stdout\nto /dev/fd/1\n"
    assert list(tmp_path.iterdir()) == []


def test_a_name_near_the_length_limit_is_written(tmp_path):
    target = tmp_path / ("a" * 250 + ".txt")  # 254 bytes: the temporary file's name must not be longer than 255
    files.write_output(target, "x\n")
    assert target.read_text() == "x\n" and len(list(tmp_path.iterdir())) == 1


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


def _block_device(tmp_path: Path) -> Path:
    path = tmp_path / "block"
    try:
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except OSError as error:
        pytest.skip(f"cannot make a device node here: {error}")
    return path


REFUSED_FILES = [
    (lambda tmp: "", "cannot write '': expected a file name"),
    (lambda tmp: str(tmp), "it is a folder, expected a file name"),
    (lambda tmp: f"{tmp}/no/such/page.txt", "folder {tmp}/no/such does not exist"),
    (lambda tmp: f"{tmp}/newdir/", "it names a folder, expected a file name"),
    (lambda tmp: f"{tmp}/afile/page.txt", "Not a directory"),
    (lambda tmp: "/proc/lstmkit-page.txt", "cannot write /proc/lstmkit-page.txt: No such file or directory"),
    (lambda tmp: "/proc/self/status", "cannot write /proc/self/status"),
    (lambda tmp: "/sys/lstmkit-page.txt", "cannot write /sys/lstmkit-page.txt: "),
    (lambda tmp: f"{tmp}/{'a' * 300}.txt", "File name too long"),
    (lambda tmp: str(_socket(tmp)), "it is a socket"),
    (lambda tmp: str(_block_device(tmp)), "it is a block device"),
]


@pytest.mark.parametrize(("make", "message"), REFUSED_FILES)
def test_refused_files_are_one_line_and_create_nothing(make, message, tmp_path):
    (tmp_path / "afile").write_text("the user's\n")
    path = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as caught:
        files.check_output_file(path)
    assert message.format(tmp=tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("cannot write ")
    with pytest.raises(ValueError):
        files.write_output(path, "x")
    assert snapshot(tmp_path) == before


REFUSED_FOLDERS = [
    ("", "cannot write '': expected a folder name"),
    ("-", "expected a folder name"),
    ("{tmp}/afile", "it is a file, expected a folder"),
    ("{tmp}/afile/sub", "{tmp}/afile is a file, expected a folder"),
    ("/proc/lstmkit-out/sub", "cannot write /proc/lstmkit-out/sub: "),
    ("/sys/lstmkit-out", "cannot write /sys/lstmkit-out: "),
]


@pytest.mark.parametrize(("path", "message"), REFUSED_FOLDERS)
def test_refused_folders_are_one_line_and_create_nothing(path, message, tmp_path):
    (tmp_path / "afile").write_text("the user's\n")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as caught:
        files.check_output_dir(path.format(tmp=tmp_path))
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert snapshot(tmp_path) == before


def test_a_folder_to_be_made_is_checked_without_making_it(tmp_path):
    files.check_output_dir(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []
    folder = files.make_output_dir(tmp_path / "a" / "b")
    assert folder.is_dir()
    files.write_into(folder, "x.json", "{}\n")
    assert (folder / "x.json").read_text() == "{}\n"


UNSHARE_SCRIPT = r"""
set -e
mount --bind "$1/ro" "$1/ro"
mount -o remount,bind,ro "$1/ro"
mount -t tmpfs -o size=64k tmpfs "$1/small"
printf 'old page\n' > "$1/small/page.txt"
"$2" -c '
import sys
from lstmkit import files
folder = sys.argv[1]
for call in (lambda: files.check_output_file(folder + "/ro/page.txt"),
             lambda: files.check_output_dir(folder + "/ro/out"),
             lambda: files.write_output(folder + "/small/page.txt", "x" * 200_000)):
    try:
        call()
        print("accepted")
    except ValueError as error:
        print(error)
' "$1"
cat "$1/small/page.txt"
ls -A "$1/small" "$1/ro"
"""


def test_read_only_folder_and_full_disk_in_a_private_mount_namespace(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    (tmp_path / "ro").mkdir()
    (tmp_path / "small").mkdir()
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            UNSHARE_SCRIPT,
            "sh",
            str(tmp_path),
            sys.executable,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    assert lines == [
        f"cannot write {tmp_path}/ro/page.txt: Read-only file system",
        f"cannot write {tmp_path}/ro/out: Read-only file system",
        f"cannot write {tmp_path}/small/page.txt: No space left on device",
        "old page",  # the page the full disk could not replace is still whole
        f"{tmp_path}/ro:",  # and no temporary file is left in either folder
        "",
        f"{tmp_path}/small:",
        "page.txt",
    ], result.stdout + result.stderr


# --- the verbs ------------------------------------------------------------------------------------------------


def test_walkthrough_to_a_device_and_a_fifo_writes_through(tmp_path, capsys):
    null = device(tmp_path, "null", 3)
    assert main(["walkthrough", "--format", "html", "-o", str(null)]) == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device became a regular file"
    fifo = FifoReader(tmp_path)
    assert main(["walkthrough", "--format", "markdown", "-o", str(fifo.path)]) == 0
    assert fifo.result().startswith(b"# LSTM walkthrough")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "pipe"]


@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
@pytest.mark.parametrize("fmt", ["html", "json"])
def test_walkthrough_stdout_name_gives_exactly_the_page(name, fmt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["walkthrough", "--format", fmt]) == 0
    expected = capsys.readouterr().out
    assert main(["walkthrough", "--format", fmt, "-o", name]) == 0
    out, err = capsys.readouterr()
    assert out == expected and err == "" and list(tmp_path.iterdir()) == []


def test_gradients_output_checked_before_the_work(tmp_path, capsys, monkeypatch):
    from lstmkit.explain import gradients

    def never(*args):
        raise AssertionError("the curves were computed before -o was checked")

    monkeypatch.setattr(gradients, "gradient_by_lag", never)
    code = main(["gradients", "--format", "png", "-o", f"{tmp_path}/no/such/g.png"])
    one_line_error(code, capsys.readouterr().err, "lstmkit gradients: error: cannot write", "does not exist")


EXERCISE_REFUSALS = [
    (["mine.json"], ["mine.json exists already", "--replace"]),
    (["mine-answers.md"], ["mine-answers.md exists already", "--replace"]),
    (["mine.json", "mine-answers.md"], ["mine-answers.md and ", "mine.json exist already", "them"]),
]


@pytest.mark.parametrize(("existing", "needles"), EXERCISE_REFUSALS)
def test_exercise_never_replaces_files_the_user_did_not_name(existing, needles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in existing:
        Path(name).write_text("the user's own work\n")
    before = snapshot(tmp_path)
    code = main(["exercise", "-o", "mine.md"])
    one_line_error(code, capsys.readouterr().err, "lstmkit exercise: error: ", *needles)
    assert snapshot(tmp_path) == before, "nothing is written when one of the three is refused"
    assert main(["exercise", "-o", "mine.md", "--replace"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-answers.md", "mine.json", "mine.md"]
    assert "the user's own work" not in Path("mine.json").read_text()


def test_exercise_writes_all_three_or_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("mine-answers.md").mkdir()
    code = main(["exercise", "-o", "mine.md", "--replace"])
    one_line_error(code, capsys.readouterr().err, "mine-answers.md", "folder")
    assert [p.name for p in tmp_path.iterdir()] == ["mine-answers.md"]


def test_exercise_to_standard_output_or_a_device(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["exercise", "--answers"]) == 0
    answers = capsys.readouterr().out
    assert main(["exercise", "--answers", "-o", "-"]) == 0
    assert capsys.readouterr().out == answers
    null = device(tmp_path, "null", 3)
    code = main(["exercise", "-o", str(null)])
    one_line_error(code, capsys.readouterr().err, "is not a regular file", "beside")
    code = main(["exercise", "--replace"])
    one_line_error(code, capsys.readouterr().err, "--replace")
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def _fake_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    return folder


def test_default_outputs_of_a_checkpoint_lie_beside_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    step = _fake_checkpoint(run / "step-00000500")
    assert default_output(str(step), "report", ".html") == run / "report-step-00000500.html"
    assert default_output(str(step) + "/", "explain") == run / "explain-step-00000500"
    assert default_output(str(run), "report", ".html") == run / "report.html"
    (run / "step-7").mkdir()  # no meta.json: not a checkpoint, so the output goes inside as for any folder
    assert default_output(str(run / "step-7"), "explain") == run / "step-7" / "explain"
    monkeypatch.chdir(step)
    assert default_output(".", "report", ".html") == run / "report-step-00000500.html"


def test_report_and_explain_of_a_checkpoint_write_where_rotation_never_reaches(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    step = run / "step-00000004"
    inside = sorted(p.name for p in step.iterdir())
    assert main(["report", str(step)]) == 0
    assert main(["explain", str(step), "--layer", "0"]) == 0
    assert sorted(p.name for p in step.iterdir()) == inside, "an output went into the checkpoint folder"
    assert (run / "report-step-00000004.html").read_text().startswith("<!DOCTYPE html>")
    assert any(p.suffix == ".png" for p in (run / "explain-step-00000004").iterdir())
    assert f"written to {run / 'report-step-00000004.html'}" in capsys.readouterr().out


def test_report_and_explain_check_outputs_before_the_work(tiny_run, tmp_path, capsys, monkeypatch):
    import lstmkit.explain.trained.pictures
    import lstmkit.explain.trained.report

    def never(*args, **kwargs):
        raise AssertionError("the work was done before -o was checked")

    monkeypatch.setattr(lstmkit.explain.trained.report, "report_html", never)
    monkeypatch.setattr(lstmkit.explain.trained.pictures, "explain_run", never)
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    for argv, needles in [
        (["report", str(tiny_run), "-o", "/proc/lstmkit-report.html"], ["cannot write /proc/lstmkit-report.html"]),
        (["report", str(tiny_run), "-o", str(tmp_path)], ["it is a folder"]),
        (["report", str(tiny_run), "-o", f"{tmp_path}/no/r.html"], ["does not exist"]),
        (["explain", str(tiny_run), "-o", str(tmp_path / "afile")], ["it is a file, expected a folder"]),
        (["explain", str(tiny_run), "-o", "/proc/lstmkit-pictures"], ["cannot write /proc/lstmkit-pictures"]),
    ]:
        code = main(argv)
        one_line_error(code, capsys.readouterr().err, f"lstmkit {argv[0]}: error: ", *needles)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--threads", "0"], ["--threads is 0"]),
        (["--threads", "-4"], ["--threads is -4"]),
        (["--threads", str(10**6)], ["--threads is 1000000", "expected 1 to"]),
        (["-o", "/proc/lstmkit-bench"], ["cannot write /proc/lstmkit-bench"]),
        (["-o", ""], ["cannot write ''"]),
        (["-o", "{tmp}/afile/sub"], ["afile is a file, expected a folder"]),
    ],
)
def test_bench_refuses_before_measuring(argv, needles, tmp_path, capsys, monkeypatch):
    from lstmkit.bench import suite

    def never(*args):
        raise AssertionError("measuring started before the arguments were checked")

    monkeypatch.setattr(suite, "gemm_rates", never)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    code = main(["bench", "--quick", "--only", "rnn", *[a.format(tmp=tmp_path) for a in argv]])
    one_line_error(code, capsys.readouterr().err, "lstmkit bench: error: ", *needles)
    assert snapshot(tmp_path) == before


# --- the page a --spec makes is bounded, and a spec of the wrong shape is one line ------------------------------


def _seeds_spec() -> dict:
    from lstmkit.explain.walkthrough import example_file
    from lstmkit.reference import examples

    return example_file.to_dict(examples.seeds_lstm())


def _edit(change):
    def edited() -> str:
        import json

        data = _seeds_spec()
        change(data)
        return json.dumps(data)

    return edited


def _text(make):
    return lambda: make(__import__("json").dumps(_seeds_spec()))


# a list for an object, ragged rows and the like were one line already (tests/explain/test_walkthrough.py)
SPEC_REFUSALS = [
    (_edit(lambda d: d.update(inputs=d["inputs"] * 7000)), "field 'inputs' has 21000 time steps, expected at most 100"),
    (_edit(lambda d: d.update(hidden_size=20000)), "field 'hidden_size' is 20000, expected at most 16"),
    (_edit(lambda d: d.update(input_size=17)), "field 'input_size' is 17, expected at most 16"),
    (_edit(lambda d: d["weights"].update(W_f="[[1, 2]]")), 'weights.W_f must be numbers, got "[[1, 2]]"'),
    (_edit(lambda d: d["weights"].update(b_f=["1", "2"])), 'weights.b_f must be numbers, got "1"'),
    (_edit(lambda d: d["weights"].update(b_f=[True, 2])), "weights.b_f must be numbers, got true"),
    (_edit(lambda d: d["weights"].update(b_f=None)), "weights.b_f must be numbers, got null"),
    (_edit(lambda d: d["weights"].update(b_f=[[[1]], [[2]]])), "weights.b_f has lists nested 3 deep"),
    (_edit(lambda d: d.update(cell=["lstm"])), "field 'cell' is ['lstm'], expected one of lstm"),
    (_edit(lambda d: d["initial_state"].update(c=[1e7, 0])), "initial_state.c has 10000000.0, expected finite numbers"),
    (_text(lambda t: t.replace("0.3", "1e999")), "initial_state.c has inf, expected finite numbers"),
    (_text(lambda t: t.replace("0.3", "1" + "0" * 400)), "initial_state.c has a number of about 401 digits"),
    (_text(lambda t: t.replace("0.3", "1" + "0" * 5000)), "not valid JSON"),
    (lambda: '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    (lambda: " " * 1_000_001, "larger than 1,000,000 bytes"),
    (lambda: b"\xff\xfe{}", "not UTF-8 text"),
]


@pytest.mark.parametrize(("make", "message"), SPEC_REFUSALS, ids=[row[1][:40] for row in SPEC_REFUSALS])
def test_bad_or_huge_spec_is_one_line_before_any_page(make, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content = make()
    path = tmp_path / "spec.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = main(["walkthrough", "--spec", str(path), "--format", "html", "-o", "page.html"])
    one_line_error(code, capsys.readouterr().err, f"lstmkit walkthrough: error: {path}: ", message)
    assert [p.name for p in tmp_path.iterdir()] == ["spec.json"]
