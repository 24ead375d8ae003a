"""Runs INSIDE gimp-console-3.0 (python-fu-eval), driven by tests/gimp/test_gimp_plugin.py.

It reads the job file named by $MOS_JOB, performs each case through GIMP's PDB exactly as a user's menu click would
(NONINTERACTIVE run of the plug-in's procedures), and writes, per case, the raw "Y u8" pixels of the resulting
selection (and of a layer mask / new channel where asked) plus a results.json with statuses and messages. The
pytest side compares those pixels with `mos cut` / `mos refine`.
"""

import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

JOB = json.load(open(os.environ["MOS_JOB"]))
OUT = JOB["out"]
PDB = Gimp.get_pdb()
RESULTS = {}


def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def run_proc(name, image, drawables, **props):
    proc = PDB.lookup_procedure(name)
    if proc is None:
        return {"status": "NOT-FOUND", "message": f"procedure {name} not registered"}
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", drawables)
    for key, value in props.items():
        cfg.set_property(key, value)
    res = proc.run(cfg)
    status = res.index(0)
    message = None
    if res.length() > 1:
        try:
            message = res.index(1)
        except Exception:  # noqa: BLE001
            message = None
    return {"status": getattr(status, "value_nick", str(status)), "message": message}


def dump(drawable, rect, key):
    """Raw Y u8 of `drawable` over rect (x, y, w, h) → OUT/key.y8."""
    x, y, w, h = rect
    data = drawable.get_buffer().get(Gegl.Rectangle.new(x, y, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
    with open(os.path.join(OUT, key + ".y8"), "wb") as f:
        f.write(bytes(data))
    return [w, h]


def dump_selection(image, key):
    return dump(image.get_selection(), (0, 0, image.get_width(), image.get_height()), key)


def case_select(c):
    image = load(c["image"])
    if c.get("precision"):
        image.convert_precision(getattr(Gimp.Precision, c["precision"]))
    layer = image.get_layers()[0]
    info = {"precision": str(image.get_precision().value_nick), "base": str(image.get_base_type().value_nick)}
    if c.get("clear_rect"):
        layer.add_alpha()
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *c["clear_rect"])
        layer.edit_clear()
        Gimp.Selection.none(image)
    if c.get("canvas"):
        # A bigger canvas with the photo layer at an offset: the mask must land at the layer's place.
        w, h, ox, oy = c["canvas"]
        image.resize(w, h, ox, oy)
        info["offsets"] = list(layer.get_offsets()[1:])
    if c.get("pre_rect"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *c["pre_rect"])
    dump_selection(image, c["key"] + "_before")
    props = {k: v for k, v in c.get("props", {}).items()}
    info.update(run_proc(c["proc"], image, [layer], **props))
    info["size"] = dump_selection(image, c["key"])
    if c.get("props", {}).get("output") == "layer-mask":
        mask = layer.get_mask()
        info["has_layer_mask"] = mask is not None
        if mask is not None:
            dump(mask, (0, 0, layer.get_width(), layer.get_height()), c["key"] + "_layermask")
    if c.get("props", {}).get("output") == "channel":
        channels = image.get_channels()
        info["channels"] = [ch.get_name() for ch in channels]
        if channels:
            dump(channels[0], (0, 0, image.get_width(), image.get_height()), c["key"] + "_channel")
    return info


def case_refine(c):
    image = load(c["image"])
    layer = image.get_layers()[0]
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *c["rect"])
    dump_selection(image, c["key"] + "_before")
    info = run_proc("mos-meticulous-refine-selection", image, [layer], **c.get("props", {}))
    info["size"] = dump_selection(image, c["key"])
    return info


for case in JOB["cases"]:
    try:
        RESULTS[case["key"]] = {"refine": case_refine, "select": case_select}[case["kind"]](case)
    except Exception:  # noqa: BLE001 - reported to pytest, which fails with the traceback
        RESULTS[case["key"]] = {"status": "BATCH-EXCEPTION", "message": traceback.format_exc()}

with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(RESULTS, f, indent=1)
