"""Readers of what the trackers wrote, independent of the writers: TensorBoard event files
(TFRecord framing, parsed by hand, checked with CRC-32C) and W&B's offline run files
(`run-*.wandb`, LevelDB log framing, parsed by hand). Only the message schemas come from
the packages (`tensorboardX.proto`, `wandb.proto`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: slow and obviously right."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: Path) -> list[bytes]:
    """The records of a TFRecord file: `[u64 length][u32 masked crc][data][u32 masked crc]`."""
    data, pos, out = Path(path).read_bytes(), 0, []
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert length_crc == _masked(_crc32c(data[pos:pos + 8])), f"{path}: bad length checksum"
        record = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert data_crc == _masked(_crc32c(record)), f"{path}: bad record checksum"
        out.append(record)
        pos += 16 + length
    return out


def tensorboard_run(folder: Path) -> tuple[dict[str, dict[int, float]], dict]:
    """`(tag -> {step: value}, hyper-parameters)` from every event file in `folder`."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    scalars: dict[str, dict[int, float]] = {}
    hparams: dict = {}
    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    assert files, f"no event files in {folder}"
    for path in files:
        for record in tfrecords(path):
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for key, v in data.session_start_info.hparams.items():
                        hparams[key] = getattr(v, v.WhichOneof("kind"))
                elif value.WhichOneof("value") == "simple_value":
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars, hparams


def wandb_records(path: Path) -> list[bytes]:
    """The records of a W&B run file: a 7-byte header (`:W&B`, magic, version), then 32 KiB
    blocks of `[u32 crc][u16 length][u8 type][data]` chunks (1 full, 2 first, 3 middle, 4 last)."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, out, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is zero padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
    return out


def wandb_run(run_folder: Path) -> dict:
    """`{"name", "group", "config": {key: value}, "history": {key: {step: value}}}` of one
    offline run folder (`wandb/offline-run-*`)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = Path(run_folder).glob("run-*.wandb")
    out = {"name": None, "group": None, "id": None, "config": {}, "history": {}}
    for data in wandb_records(path):
        record = pb.Record.FromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["group"], out["id"] = record.run.display_name, record.run.run_group, record.run.run_id
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            step = items.pop("_step", None)
            if step is None:
                step = record.history.step.num
            for key, value in items.items():
                if not key.startswith("_"):
                    out["history"].setdefault(key, {})[int(step)] = value
    return out


def wandb_runs(folder: Path) -> dict[str, dict]:
    """Every offline run under `folder/wandb/`, by run name."""
    out: dict[str, dict] = {}
    for path in sorted((Path(folder) / "wandb").glob("offline-run-*")):  # a resumed run adds a folder
        run = wandb_run(path)
        merged = out.setdefault(run["name"], {**run, "history": {}, "files": 0, "ids": []})
        merged["files"] += 1
        merged["ids"].append(run["id"])
        for key, points in run["history"].items():
            merged["history"].setdefault(key, {}).update(points)
    return out
