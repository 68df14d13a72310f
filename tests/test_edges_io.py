"""Trust at the edges of checkpoints and of the transform boundary (the issue's items).

1. dp.load refuses a FIFO, a directory or a device at once, naming the path and what it is
   (and dp.save refuses to replace one).
2. A killed dp.save leaves a temporary named after its writer, which the next save of that
   file removes once the writer is dead (never while it lives); an exception, KeyboardInterrupt
   included, removes dp.save's own temporary.
3. A failed write (ENOSPC, EFBIG, ...) raises an OSError with its errno that names the user's
   path and says nothing was written; the temporary is gone, the old checkpoint intact.
4. dp.save into a missing folder names the user's path and says the folder does not exist.
5. dp.load(path, like=tree) gives exactly like's structure and leaf types (and devices),
   and a mismatch raises StructureError naming the key path and both sides.
6. An unregistered dataclass holding floats in a differentiated position raises
   UnsupportedLeafError naming its key path and dp.tree.register_dataclass.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import require_cupy
from diffprog.errors import CheckpointError, StructureError, UnsupportedLeafError


@dp.tree.register_dataclass
@dataclasses.dataclass
class Dense:
    W: object
    b: object
    act: str = dataclasses.field(default="tanh", metadata={"static": True})


@dataclasses.dataclass
class Params:  # not registered: dp.tree sees one opaque leaf
    w: object


@dataclasses.dataclass
class Config:  # not registered, no floating values: a constant like a string
    depth: int
    name: str


# ---------------------------------------------------------------- 1. special files


_LOAD = r"""
import json, sys
import diffprog as dp
try:
    dp.load(sys.argv[1])
except Exception as e:
    print(json.dumps([type(e).__name__, isinstance(e, (dp.CheckpointError, OSError)), str(e)]))
"""


def _load_in_a_subprocess(path):
    """dp.load(path) in a fresh interpreter (a FIFO's open blocks holding the GIL): the error's
    type name, whether it is a CheckpointError or OSError, and its message; None if it hung."""
    try:
        run = subprocess.run([sys.executable, "-c", _LOAD, path], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(run.stdout)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.parametrize("kind", ["FIFO", "directory", "character device"])
def test_item1_load_refuses_a_special_file_at_once(tmp_path, kind):
    if kind == "FIFO":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    elif kind == "directory":
        path = str(tmp_path)
    else:
        path = os.devnull
    error = _load_in_a_subprocess(path)
    assert error is not None, f"dp.load waited on the {kind} instead of refusing it"
    name, expected_type, message = error
    assert expected_type, (name, message)
    assert path in message and kind in message and "not a checkpoint file" in message, message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
def test_item1_save_refuses_to_replace_a_special_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(fifo))} is a FIFO"):
        dp.save(fifo, {"w": 1.0})
    with pytest.raises(IsADirectoryError, match="is a directory"):
        dp.save(tmp_path, {"w": 1.0})
    assert os.listdir(tmp_path) == ["pipe"] and os.path.exists(fifo) and not fifo.is_file()


# ---------------------------------------------------------------- 2. temporaries of dead writers

# A dp.save that stops for good in the middle of writing (then the test kills it or lets it
# live): it blocks in the first big os.write of the tensor data (or, for a writer that does not
# write through os.write, right after safetensors' writer).
_WRITER = r"""
import os, sys, time
import numpy as np, safetensors.numpy
import diffprog as dp

def block():
    print("writing", flush=True)
    time.sleep(300)

real_write, real_save_file = os.write, safetensors.numpy.save_file

def write(fd, data):
    n = real_write(fd, data)
    if len(data) > 4096:
        block()
    return n

def save_file(*args, **kwargs):
    real_save_file(*args, **kwargs)
    block()

os.write, safetensors.numpy.save_file = write, save_file
dp.save(sys.argv[1], {"w": np.ones(1_000_000)})
print("finished", flush=True)
"""


def _blocked_writer(target):
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if line.strip() != "writing":
        child.kill()
        pytest.fail(f"the writer did not block mid-write: {line!r} {child.stderr.read()}")
    return child


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_item2_a_killed_writers_temporary_is_removed_by_the_next_save(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    dp.save(target, {"v": 0})
    child = _blocked_writer(target)
    child.kill()  # SIGKILL: no cleanup code runs
    child.wait()
    (temp,) = _temporaries(tmp_path)
    assert f"-{child.pid}." in temp, f"the temporary {temp} does not name its writer"
    assert os.path.getsize(tmp_path / temp) > 4096 and dp.load(target) == {"v": 0}
    # The same pid on another machine (a shared file system) says nothing: that file stays.
    elsewhere = re.sub(r"\.[0-9a-f]{8}-", ".0badf00d-", temp)
    assert elsewhere != temp
    os.link(tmp_path / temp, tmp_path / elsewhere)

    dp.save(target, {"v": 1})
    assert dp.load(target) == {"v": 1} and _temporaries(tmp_path) == [elsewhere]

    # An exception in dp.save, KeyboardInterrupt included, removes its own temporary.
    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dp.save(target, {"v": np.ones(3)})
    monkeypatch.undo()
    assert _temporaries(tmp_path) == [elsewhere] and dp.load(target) == {"v": 1}


def test_item2_a_live_writers_temporary_is_kept(tmp_path):
    target = tmp_path / "ckpt"
    child = _blocked_writer(target)
    try:
        (temp,) = _temporaries(tmp_path)
        assert f"-{child.pid}." in temp
        dp.save(target, {"v": 1})  # the other writer is alive: its file is not ours to remove
        assert _temporaries(tmp_path) == [temp] and dp.load(target) == {"v": 1}
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- 3. write failures


def test_item3_disk_full_is_an_os_error_naming_the_target(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    dp.save(target, {"v": 1})
    real_write = os.write

    def disk_full(fd, data):
        if len(data) > 4096:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError) as caught:
        dp.save(target, {"w": np.ones(10_000)})
    monkeypatch.undo()
    e = caught.value
    assert e.errno == errno.ENOSPC and e.filename == str(target), repr(e)
    message = str(e)
    assert str(target) in message and ".tmp" not in message, message
    assert "No space left on device" in message and "nothing was written" in message, message
    assert os.listdir(tmp_path) == ["ckpt"] and dp.load(target) == {"v": 1}


_TOO_LARGE = r"""
import json, resource, sys
import numpy as np
import diffprog as dp
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
try:
    dp.save(sys.argv[1], {"w": np.ones(1 << 20)})  # 8 MB into a 1 MB file size limit
except Exception as e:
    print(json.dumps([type(e).__name__, isinstance(e, OSError), getattr(e, "errno", None), str(e)]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_item3_a_real_failed_write_keeps_its_errno(tmp_path):
    target = tmp_path / "ckpt"
    run = subprocess.run([sys.executable, "-c", _TOO_LARGE, str(target)], capture_output=True,
                         text=True, timeout=120)
    name, is_os_error, code, message = json.loads(run.stdout)
    assert is_os_error and code == errno.EFBIG, (name, code, message)
    assert str(target) in message and "nothing was written" in message, message
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- 4. missing folder


def test_item4_save_into_a_missing_folder_names_the_users_path(tmp_path):
    target = tmp_path / "missing" / "ckpt"
    with pytest.raises(FileNotFoundError) as caught:
        dp.save(target, {"v": 1})
    message = str(caught.value)
    assert str(target) in message and ".tmp" not in message, message
    assert f"folder {tmp_path / 'missing'} does not exist" in message, message
    assert not (tmp_path / "missing").exists()  # not created behind the user's back
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"is not a folder") as caught:
        dp.save(tmp_path / "file" / "ckpt", {"v": 1})
    assert str(tmp_path / "file" / "ckpt") in str(caught.value)


# ---------------------------------------------------------------- 5. load(like=)


def _model(W=None, scale=0.5):
    return {
        "layers": [Dense(np.arange(6.0, dtype=np.float32).reshape(2, 3) if W is None else W,
                         np.zeros(3, np.float32))],
        "scale": scale,
        "step": 3,
        "opt": collections.OrderedDict(m=np.ones(2), v=(np.float64(2.0), None)),
    }


def test_item5_load_like_gives_likes_structure_and_types(tmp_path):
    path = tmp_path / "ckpt"
    saved = _model()
    dp.save(path, saved)
    like = {"step": 0, "scale": 0.0, "opt": collections.OrderedDict(m=np.zeros(2),
                                                                    v=(np.float64(0), None)),
            "layers": [Dense(np.zeros((2, 3), np.float32), np.ones(3, np.float32))]}
    out = dp.load(path, like=like)
    assert list(out) == list(like)  # like's key order
    assert dp.tree.structure(out) == dp.tree.structure(like)
    assert type(out["scale"]) is float and out["scale"] == 0.5
    assert type(out["opt"]) is collections.OrderedDict and type(out["opt"]["v"][0]) is np.float64
    assert type(out["layers"][0]) is Dense and out["layers"][0].W.dtype == np.float32
    np.testing.assert_array_equal(out["layers"][0].W, saved["layers"][0].W)
    with pytest.raises(ValueError, match="like= or device="):
        dp.load(path, like=like, device="cpu")


@pytest.mark.parametrize("like,where,file_side,like_side", [
    ({**_model(), "extra": 1.0}, "['extra']", "no such key", "a Python float"),
    ({k: v for k, v in _model().items() if k != "step"}, "['step']", "a Python int",
     "no such key"),
    (_model(W=np.zeros((3, 2), np.float32)), "['layers'][0].W",
     "a float32 array of shape (2, 3)", "a float32 array of shape (3, 2)"),
    (_model(W=np.zeros((2, 3))), "['layers'][0].W", "a float32 array", "a float64 array"),
    (_model(scale=np.float64(0.5)), "['scale']", "a Python float", "a NumPy float64 scalar"),
    ({**_model(), "layers": (_model()["layers"][0],)}, "['layers']", "a list of length 1",
     "a tuple of length 1"),
    ({**_model(), "layers": [Dense(np.zeros((2, 3), np.float32), np.zeros(3, np.float32),
                                   act="relu")]}, "['layers'][0]", "act='tanh'", "act='relu'"),
])
def test_item5_load_like_names_the_first_mismatch(tmp_path, like, where, file_side, like_side):
    path = tmp_path / "ckpt"
    dp.save(path, _model())
    with pytest.raises(StructureError) as caught:
        dp.load(path, like=like)
    message = str(caught.value)
    assert str(path) in message and f"at {where}:" in message, message
    file_says, like_says = message.split("like has")
    assert file_side in file_says and like_side in like_says, message


def test_item5_a_numpy_scalar_and_a_0d_array_of_one_dtype_load_as_likes_kind(tmp_path):
    """An optimizer's step count is a NumPy int64 for host params and a 0-d array for CuPy
    ones: a checkpoint of either loads into the other (other dtypes still differ)."""
    dp.save(tmp_path / "scalar", {"count": np.int64(7)})
    dp.save(tmp_path / "array", {"count": np.array(7)})
    out = dp.load(tmp_path / "scalar", like={"count": np.array(0)})
    assert type(out["count"]) is np.ndarray and out["count"].shape == () and out["count"] == 7
    out = dp.load(tmp_path / "array", like={"count": np.int64(0)})
    assert type(out["count"]) is np.int64 and out["count"] == 7
    with pytest.raises(StructureError, match=r"\['count'\]: .*int64.* like has .*int32"):
        dp.load(tmp_path / "scalar", like={"count": np.array(0, np.int32)})


@pytest.mark.gpu
def test_item5_load_like_keeps_likes_devices(tmp_path):
    cupy = require_cupy()
    gpu = cupy.cuda.runtime.getDeviceCount() - 1  # with two GPUs: GPU 1 while GPU 0 is current
    dp.save(tmp_path / "ckpt", {"w": np.arange(3.0), "host": np.ones(2), "s": 1.5})
    with cupy.cuda.Device(gpu):
        w = cupy.zeros(3)
    out = dp.load(tmp_path / "ckpt", like={"w": w, "host": np.zeros(2), "s": 0.0})
    assert isinstance(out["w"], cupy.ndarray) and out["w"].device.id == gpu
    assert type(out["host"]) is np.ndarray and type(out["s"]) is float
    assert out["w"].get().tolist() == [0.0, 1.0, 2.0]


# ---------------------------------------------------------------- 6. unregistered dataclasses


def _loss(p, *rest):
    return dnp.sum(p["lin"].w * 2.0) + dnp.sum(p["b"])


def _tape_watch(p):
    with dp.Tape() as tape:
        tape.watch(p)


_PARAMS = {"lin": Params(np.ones(2)), "b": np.zeros(2)}


@pytest.mark.parametrize("entry", [
    lambda: dp.grad(_loss)(_PARAMS),
    lambda: dp.value_and_grad(_loss)(_PARAMS),
    lambda: dp.vjp(_loss, _PARAMS),
    lambda: dp.jvp(_loss, (_PARAMS,), (_PARAMS,)),
    lambda: dp.hessian(_loss)(_PARAMS),
    lambda: dp.jacfwd(_loss)(_PARAMS),
    lambda: _tape_watch(_PARAMS),
    lambda: dp.grad(_loss)({"lin": Params([np.ones(2)]), "b": np.zeros(2)}),  # nested
    lambda: dp.grad(_loss)({"lin": Params(0.5), "b": np.zeros(2)}),  # a Python float
], ids=["grad", "value_and_grad", "vjp", "jvp", "hessian", "jacfwd", "Tape.watch",
        "nested", "python-float"])
def test_item6_unregistered_dataclass_holding_floats_is_refused(entry):
    with pytest.raises(UnsupportedLeafError) as caught:
        entry()
    message = str(caught.value)
    assert "['lin']" in message and "Params" in message, message
    assert "dp.tree.register_dataclass(Params)" in message, message


def _tape_target():
    with dp.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = Params(x * 2.0)
    return tape.gradient(y, x)


@pytest.mark.parametrize("entry", [
    lambda: dp.vjp(lambda x: {"lin": Params(x * 2.0)}, np.ones(2)),
    lambda: dp.jacrev(lambda x: {"lin": Params(x * 2.0)})(np.ones(2)),
    lambda: dp.jvp(lambda x: {"lin": Params(x * 2.0)}, (np.ones(2),), (np.ones(2),)),
    lambda: _tape_target(),
], ids=["vjp", "jacrev", "jvp", "Tape.gradient"])
def test_item6_unregistered_dataclass_output_holding_tracers_is_refused(entry):
    """Outputs too: traced values inside an opaque leaf would get zero or None derivatives."""
    with pytest.raises(UnsupportedLeafError, match=r"Params holds floating values.*"
                       r"dp\.tree\.register_dataclass\(Params\)"):
        entry()


def test_item6_a_dataclass_of_constants_stays_a_constant():
    """A config object of ints and strings is a constant, like a string leaf; one holding
    floats is refused even where the function does not use it; registered, it is
    differentiated field by field."""
    p = {"b": np.ones(2), "cfg": Config(2, "mlp"), "ids": Params(np.arange(2))}  # int array
    g = dp.grad(lambda p: dnp.sum(p["b"]) * p["cfg"].depth)(p)
    assert g["cfg"] is None and g["ids"] is None and g["b"].tolist() == [2.0, 2.0]
    with pytest.raises(UnsupportedLeafError, match=r"x\['p'\]"):
        dp.grad(lambda x: 1.0)({"p": Params(np.ones(1))})
    dp.tree.register_dataclass(Scaled)
    g = dp.grad(lambda s: dnp.sum(s.w * s.w))(Scaled(np.array([1.0, 2.0])))
    assert type(g) is Scaled and g.w.tolist() == [2.0, 4.0]


@dataclasses.dataclass
class Scaled:
    w: object
