#!/usr/bin/env python3
"""Writes the small torch.save files under Tests/Fixtures/checkpoints/ that test the Swift
TorchCheckpoint reader: valid ones with known values (arange-style formulas the Swift tests
recompute), and broken or hostile ones that must be refused with a clear error.

Expects a Python venv outside git with torch (written with torch 2.15, numpy 2.4), e.g.
    /work/main/.venv-ref/bin/python Scripts/make_checkpoint_fixtures.py
Run it only on purpose: the outputs are committed. Nothing here is executed by the Swift code.
The hostile pickles are built as bytes and never unpickled by this script.
"""

import collections
import io
import os
import pickle
import shutil
import struct
import sys
import tempfile
import zipfile

import numpy
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "checkpoints")


def save_to_bytes(obj, **kwargs):
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# Valid checkpoints


def dtypes_state_dict():
    """One tensor per storage type, values given by formulas the Swift test recomputes."""
    sd = collections.OrderedDict()
    sd["float32"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3
    sd["float16"] = (torch.arange(-8, 8, dtype=torch.float32) * 0.25).to(torch.float16)
    # largest, smallest subnormal, smallest normal, -0, +inf, -inf, nan
    sd["float16_special"] = torch.tensor(
        [65504.0, 2.0**-24, 2.0**-14, -0.0, float("inf"), float("-inf"), float("nan")], dtype=torch.float16)
    sd["bfloat16"] = (torch.arange(-6, 6, dtype=torch.float32) * 0.5).to(torch.bfloat16)
    # exactly representable: 2^100, -2^-100, a float32 subnormal 3 * 2^-131
    sd["bfloat16_special"] = torch.tensor([2.0**100, -(2.0**-100), 3 * 2.0**-131], dtype=torch.bfloat16)
    sd["float64"] = torch.tensor([1.5, -2.25, 1e-3], dtype=torch.float64)
    sd["int64"] = torch.tensor([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 2**40], dtype=torch.int64)
    sd["int32"] = torch.arange(-3, 3, dtype=torch.int32)
    sd["int16"] = torch.tensor([-32768, 32767, 5], dtype=torch.int16)
    sd["int8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    sd["uint8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("block", {"version": 2})])
    return sd


def views_state_dict():
    """Non-contiguous views, storage offsets and storages shared between tensors."""
    sd = collections.OrderedDict()
    # arange(12).reshape(3, 4).t(): shape (4, 3), stride (1, 4); the test expects t[i][j] = 4j + i
    sd["transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    # arange(20).reshape(4, 5)[1:3, 2:5]: offset 7, stride (5, 1); expects 5(i+1) + (j+2)
    sd["sliced"] = torch.arange(20, dtype=torch.float32).reshape(4, 5)[1:3, 2:5]
    # arange(24).reshape(2, 3, 4).permute(2, 0, 1), float16: p[c][a][b] = 12a + 4b + c
    sd["permuted_half"] = torch.arange(24, dtype=torch.float16).reshape(2, 3, 4).permute(2, 0, 1)
    # Three tensors over one storage of 10: the whole, a slice from 5, a strided 2-D view.
    base = torch.arange(10, dtype=torch.float32)
    sd["shared_whole"] = base
    sd["shared_tail"] = base[5:]
    sd["shared_strided"] = base.view(2, 5)[:, ::2]  # (2, 3), stride (5, 2): 5i + 2j
    # Broadcast with stride 0: arange(3).expand(2, 3)
    sd["expanded"] = torch.arange(3, dtype=torch.float32).expand(2, 3)
    return sd


def module_state_dict():
    """A real module's state dict: _metadata from the module tree, int64 num_batches_tracked."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(6, dtype=torch.float32).reshape(3, 2, 1, 1))
        model[0].bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    model[1].num_batches_tracked.fill_(7)
    return model.state_dict()


def save_with_stem(obj, stem, name):
    """torch.save names the zip's folder after the file it writes: save as <stem>.pt, then rename,
    so the entries sit under <stem>/ while the fixture file has another name."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, stem + ".pt")
        torch.save(obj, path)
        shutil.copyfile(path, os.path.join(OUT, name))


def entry(name, compression=zipfile.ZIP_STORED):
    """A zip entry with a fixed date, so regenerating gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    return info


def rezip(data, compression):
    """The same archive with every entry rewritten with `compression`."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as target:
        for info in source.infolist():
            target.writestr(entry(info.filename, compression), source.read(info.filename))
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Hand-built pickles, written the way torch.save writes them (protocol 2, persistent ids)


class FakeStorage:
    def __init__(self, storage_type, key, numel):
        self.storage_type, self.key, self.numel = storage_type, key, numel


class FakeTensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def torch_like_pickle(obj):
    buffer = io.BytesIO()
    TorchLikePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def archive(pickle_bytes, storages, prefix="archive", byteorder=b"little"):
    """A zip laid out like torch.save's: <prefix>/data.pkl, <prefix>/data/<key>, version, byteorder."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        if pickle_bytes is not None:
            z.writestr(entry(f"{prefix}/data.pkl"), pickle_bytes)
        if byteorder is not None:
            z.writestr(entry(f"{prefix}/byteorder"), byteorder)
        for key, data in storages.items():
            z.writestr(entry(f"{prefix}/data/{key}"), data)
        z.writestr(entry(f"{prefix}/version"), b"3\n")
    return out.getvalue()


def float_bytes(values):
    return struct.pack(f"<{len(values)}f", *values)


def one_tensor(size, stride, offset=0, numel=6, storage_bytes=None, key="0", storage_type=None):
    """A one-tensor state dict {"weight": view of storage key} over float32 storage 0..numel-1."""
    storage = FakeStorage(storage_type or torch.FloatStorage, key, numel)
    sd = collections.OrderedDict([("weight", FakeTensor(storage, offset, size, stride))])
    data = float_bytes([float(i) for i in range(numel)]) if storage_bytes is None else storage_bytes
    return archive(torch_like_pickle(sd), {"0": data})


class BadRebuild:
    """_rebuild_tensor_v2 called with three arguments instead of six."""

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (1, 2, 3))


class CallsOsSystem:
    """What a real attack looks like: pickle writes GLOBAL 'posix system' on Linux."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/sambatch-pwned",))


def hostile_global_pickle(module, name, argument):
    """PROTO 2; GLOBAL module name; BINUNICODE argument; TUPLE1; REDUCE; STOP."""
    text = argument.encode()
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + b"X"
            + struct.pack("<I", len(text)) + text + b"\x85R.")


def corrupt_first_storage_byte(data):
    """Flips one byte of <prefix>/data/0 without updating the zip's CRC-32."""
    z = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    header = data[info.header_offset:info.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    corrupted = bytearray(data)
    corrupted[start] ^= 0xFF
    return bytes(corrupted)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".pt"):
            os.remove(os.path.join(OUT, name))

    # Valid files.
    dtypes = save_to_bytes(dtypes_state_dict())
    write("dtypes.pt", dtypes)  # saved to a buffer: prefix "archive/"
    write("dtypes_deflated.pt", rezip(dtypes, zipfile.ZIP_DEFLATED))
    write("views.pt", save_to_bytes(views_state_dict()))
    save_with_stem(module_state_dict(), "mobile_sam", "module_other_prefix.pt")  # prefix "mobile_sam/"
    # 300 tensors: the memo outgrows one byte (LONG_BINPUT / LONG_BINGET); "t{i}" holds [i, -i],
    # "alias" views t299's storage from offset 1.
    many = collections.OrderedDict((f"t{i}", torch.tensor([float(i), -float(i)])) for i in range(300))
    many["alias"] = many["t299"][1:]  # refers back to a late memo entry: LONG_BINGET
    write("many_tensors.pt", save_to_bytes(many))
    # Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL), as torch.save(pickle_protocol=4) writes.
    write("protocol4.pt", save_to_bytes(views_state_dict(), pickle_protocol=4))
    # The layout of torch 1.6-1.x files: only data.pkl, data/<key> and version (no byteorder,
    # .format_version, .storage_alignment or .data/serialization_id), here under "mobile_sam/".
    old = collections.OrderedDict([("weight", FakeTensor(FakeStorage(torch.FloatStorage, "0", 6), 0, (2, 3), (3, 1)))])
    write("old_layout.pt", archive(torch_like_pickle(old), {"0": float_bytes([float(i) for i in range(6)])},
                                   prefix="mobile_sam", byteorder=None))
    # state_dict(keep_vars=True): Parameters pickle through _rebuild_parameter, requires_grad True.
    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.5, -2.0]]))
        linear.bias.fill_(0.25)
    write("parameters.pt", save_to_bytes(linear.state_dict(keep_vars=True)))
    # A key written twice: as in Python, the later value wins ("w1" ends up holding [3, 4]).
    twice = save_to_bytes(collections.OrderedDict([("w1", torch.tensor([1.0, 2.0])), ("w2", torch.tensor([3.0, 4.0]))]))
    pickled = zipfile.ZipFile(io.BytesIO(twice)).read("archive/data.pkl")
    assert pickled.count(b"X\x02\x00\x00\x00w2") == 1
    write("repeated_key.pt", archive(pickled.replace(b"X\x02\x00\x00\x00w2", b"X\x02\x00\x00\x00w1"), {
        "0": float_bytes([1.0, 2.0]), "1": float_bytes([3.0, 4.0])}))
    # Every float16 bit pattern once: element i has bits i (the test compares with Swift's Float16).
    every_half = torch.from_numpy(numpy.arange(65536, dtype=numpy.uint16).view(numpy.float16).copy())
    write("every_float16.pt", save_to_bytes({"bits": every_half}))

    # Refused: not our format.
    write("not_a_zip.pt", b"this is a text file, not a checkpoint\n" * 4)
    write("truncated_zip.pt", dtypes[: len(dtypes) // 2])
    write("legacy_format.pt", save_to_bytes({"w": torch.ones(2)}, _use_new_zipfile_serialization=False))
    write("no_data_pkl.pt", archive(None, {"0": float_bytes([1.0, 2.0])}))
    write("big_endian.pt", archive(torch_like_pickle(collections.OrderedDict()), {}, byteorder=b"big"))
    write("corrupt_storage.pt", corrupt_first_storage_byte(dtypes))
    write("not_a_state_dict.pt", archive(torch_like_pickle([1, 2, 3]), {}))

    # Refused: hostile or broken pickles.
    write("evil_os_system.pt", archive(hostile_global_pickle("os", "system", "echo pwned"), {}))
    write("evil_builtins_eval.pt", archive(hostile_global_pickle("builtins", "eval", "1+1"), {}))
    write("evil_posix_system.pt", archive(pickle.dumps(CallsOsSystem(), protocol=2), {}))
    # PROTO 2, EMPTY_DICT, then INT (a protocol-0 text opcode torch.save never writes).
    write("unknown_opcode.pt", archive(b"\x80\x02}I42\n.", {}))
    valid_pickle = torch_like_pickle(collections.OrderedDict(
        [("weight", FakeTensor(FakeStorage(torch.FloatStorage, "0", 6), 0, (2, 3), (3, 1)))]))
    # 300,000 nested tuples / dicts in a few KB (deflated): freeing them must not recurse per level.
    write("deep_tuples.pt", rezip(archive(b"\x80\x02)" + b"\x85" * 300_000 + b".", {}), zipfile.ZIP_DEFLATED))
    deep_dicts = b"\x80\x02" + b"}X\x01\x00\x00\x00a" * 300_000 + b"}" + b"s" * 300_000 + b"."
    write("deep_dicts.pt", rezip(archive(deep_dicts, {}), zipfile.ZIP_DEFLATED))
    write("truncated_pickle.pt", archive(valid_pickle[: len(valid_pickle) * 2 // 3], {"0": float_bytes([0.0] * 6)}))

    # Refused: malformed pickles (stack and memo misuse, wrong argument types).
    write("malformed_stack_underflow.pt", archive(b"\x80\x02R.", {}))  # REDUCE on an empty stack
    write("malformed_memo.pt", archive(b"\x80\x02h\x05.", {}))  # BINGET 5, never stored
    # SETITEM into a tuple
    write("malformed_setitem_target.pt", archive(b"\x80\x02)X\x01\x00\x00\x00aX\x01\x00\x00\x00bs.", {}))
    write("malformed_rebuild_arguments.pt", archive(torch_like_pickle(
        collections.OrderedDict([("weight", BadRebuild())])), {}))
    write("non_tensor_value.pt", archive(torch_like_pickle(collections.OrderedDict([("step", 3)])), {}))

    # Refused: tensor layouts that do not fit their storage.
    write("tensor_larger_than_storage.pt", one_tensor(size=(10,), stride=(1,), numel=4))
    write("stride_outside_storage.pt", one_tensor(size=(2, 3), stride=(4, 1), numel=6))
    write("offset_outside_storage.pt", one_tensor(size=(2,), stride=(1,), offset=5, numel=6))
    write("negative_size.pt", one_tensor(size=(-1, 3), stride=(3, 1), numel=6))
    write("overflowing_size.pt", one_tensor(size=(2**40, 2**40), stride=(0, 0), numel=6))
    write("huge_broadcast.pt", one_tensor(size=(2**31, 2**10), stride=(0, 0), numel=6))
    write("negative_stride.pt", one_tensor(size=(2, 3), stride=(-3, 1), numel=6))
    write("rank_mismatch.pt", one_tensor(size=(2, 3), stride=(1,), numel=6))
    shared = FakeStorage(torch.FloatStorage, "0", 6)
    twice = collections.OrderedDict([
        ("first", FakeTensor(shared, 0, (6,), (1,))),
        ("second", FakeTensor(FakeStorage(torch.FloatStorage, "0", 4), 0, (4,), (1,)))])
    write("storage_declared_twice.pt", archive(torch_like_pickle(twice), {"0": float_bytes([0.0] * 6)}))
    write("storage_shorter_than_declared.pt",
          one_tensor(size=(100,), stride=(1,), numel=100, storage_bytes=float_bytes([0.0] * 10)))
    write("missing_storage.pt", one_tensor(size=(6,), stride=(1,), numel=6, key="7"))

    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
