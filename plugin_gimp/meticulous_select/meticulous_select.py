#!/usr/bin/env python3
"""MOS Studio for GIMP 3: "Meticulous Select" and "Meticulous Refine Selection" in the Select menu.

GIMP's Python cannot run the network, so this plug-in only moves pixels: it reads the active layer (any precision,
RGB or grey, with alpha and offsets) as 8-bit RGBA, hands it to `python -m mos_studio.bridge` of the project's own
environment (recorded by `mos install-gimp-plugin`), and turns the returned mask into the selection, a layer mask
or a new channel — inside one undo group, and only after the backend has succeeded, so a failure never touches
the image.
"""

from __future__ import annotations

import os
import shutil
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mos_client  # noqa: E402

PROC_SELECT = "mos-meticulous-select"
PROC_REFINE = "mos-meticulous-refine-selection"
OPERATIONS = {
    "replace": Gimp.ChannelOps.REPLACE,
    "add": Gimp.ChannelOps.ADD,
    "subtract": Gimp.ChannelOps.SUBTRACT,
    "intersect": Gimp.ChannelOps.INTERSECT,
}
RESULT_NAME = "Meticulous Select"
# Shown when a refine hands the selection back as it was: "nothing needed fixing" and "nothing ran" look alike.
NOTHING_MOVED = ("Meticulous Refine Selection moved no pixel across the selection's edge: the refiner was not sure "
                 "of any change. For a quick lasso or rectangle, run it again with \"Rough selection\" ticked.")
NOTHING_MOVED_ROUGH = ("Meticulous Refine Selection moved no pixel across the selection's edge: the cut inside it "
                       "agreed with the selection as drawn.")


def _operation_choice() -> Gimp.Choice:
    choice = Gimp.Choice.new()
    choice.add("replace", 0, "Replace the selection", "")
    choice.add("add", 1, "Add to the selection", "")
    choice.add("subtract", 2, "Subtract from the selection", "")
    choice.add("intersect", 3, "Intersect with the selection", "")
    return choice


def _output_choice() -> Gimp.Choice:
    choice = Gimp.Choice.new()
    choice.add("selection", 0, "Selection", "Change the image's selection")
    choice.add("layer-mask", 1, "Layer mask", "Write the mask into the layer's mask (added if it has none)")
    choice.add("channel", 2, "New channel", "Store the mask as a new channel, leaving the selection alone")
    return choice


class MeticulousSelect(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_SELECT, PROC_REFINE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_attribution("MOS Studio", "MOS Studio contributors, MIT licence", "2026")
        if name == PROC_SELECT:
            procedure.set_menu_label("Meticulous _Select…")
            procedure.set_documentation(
                "Select the main object of the layer with MeticulousNet (L/H cascade)",
                "Segments the active layer with MOS Studio's L (segmenter) and H (refiner) networks and replaces, "
                "adds to, subtracts from or intersects the selection, or writes a layer mask or a new channel.",
                name,
            )
            procedure.add_menu_path("<Image>/Select/")
            procedure.add_choice_argument(
                "operation", "_Operation", "How the mask combines with the selection",
                _operation_choice(), "replace", GObject.ParamFlags.READWRITE,
            )
            procedure.add_boolean_argument(
                "snap-edges", "Snap edges to the _photo",
                "Move the cut's edge onto the photo's own edges where H's card asks for it (on for the shipped "
                "model); off keeps H's edge as it is",
                True, GObject.ParamFlags.READWRITE,
            )
            procedure.add_boolean_argument(
                "colour-assist", "Decide unsure edges by _colour",
                "Where the first, low-resolution pass is unsure, a colour model of what it is sure of decides "
                "(GrabCut). Helps where the object's colours plainly differ from the background's, hurts where "
                "they are shared",
                False, GObject.ParamFlags.READWRITE,
            )
            procedure.add_boolean_argument(
                "fine-detail", "_Fine detail at full resolution (slower)",
                "After its whole-image pass, the refiner looks again at 1:1 in 512 px tiles along the edge: "
                "whiskers, stray hairs and thin stems of layers larger than about 1000 px come back. About 6 "
                "times slower on a CPU",
                False, GObject.ParamFlags.READWRITE,
            )
        else:
            procedure.set_menu_label("Meticulous _Refine Selection…")
            procedure.set_documentation(
                "Refine the current selection with MeticulousNet's H refiner",
                "Uses the current selection as the coarse mask of the active layer and runs the H refiner on it "
                "(with Rough selection: cuts the object out again inside the selection's box, near its edge); the "
                "refined mask replaces the selection (or goes to a layer mask / channel).",
                name,
            )
            procedure.add_menu_path("<Image>/Select/")
            procedure.add_boolean_argument(
                "rough-selection", "R_ough selection",
                "The selection is a quick lasso or rectangle: cut the object out again inside it and take the cut "
                "within 2 % of the image's long side of the selection's edge, and inside the selection wherever the "
                "cut is sure of background. Off (the default), the refiner keeps the selection unless it is sure "
                "it is wrong, so a right selection stays right",
                False, GObject.ParamFlags.READWRITE,
            )
        procedure.add_choice_argument(
            "output", "Out_put", "Where the mask goes", _output_choice(), "selection", GObject.ParamFlags.READWRITE,
        )
        procedure.add_boolean_argument(
            "soft-edges", "Soft _edges",
            "Partial selection (alpha matting) where the refiner was unsure: hair, fur and blur stay see-through",
            False, GObject.ParamFlags.READWRITE,
        )
        return procedure

    # ---------------------------------------------------------------------------------------------------------
    def run(self, procedure, run_mode, image, drawables, config, data):
        name = procedure.get_name()
        if run_mode == Gimp.RunMode.INTERACTIVE:
            gi.require_version("GimpUi", "3.0")
            from gi.repository import GimpUi

            GimpUi.init("meticulous_select")
            dialog = GimpUi.ProcedureDialog.new(procedure, config, procedure.get_menu_label().replace("_", ""))
            dialog.fill(None)
            if not dialog.run():
                dialog.destroy()
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            dialog.destroy()

        try:
            layer = _target_layer(drawables)
            refine = name == PROC_REFINE
            operation = "replace" if refine else config.get_property("operation")
            output = config.get_property("output")
            soft = bool(config.get_property("soft-edges"))
            snap = True if refine else bool(config.get_property("snap-edges"))
            rough = bool(config.get_property("rough-selection")) if refine else False
            colour = False if refine else bool(config.get_property("colour-assist"))
            fine = False if refine else bool(config.get_property("fine-detail"))
            mask, off_x, off_y, width, height, reply = _segment(image, layer, refine, soft, snap, rough, colour,
                                                                fine)
        except mos_client.BridgeError as err:
            return _fail(procedure, f"{procedure.get_menu_label().replace('_', '').rstrip('…')}: {err.message}",
                         cancelled=err.kind == "cancelled")
        except _UserError as err:
            return _fail(procedure, str(err))

        # The backend has delivered; only now is the image changed, as one undo step.
        image.undo_group_start()
        try:
            if output == "layer-mask":
                _to_layer_mask(layer, mask, width, height)
            elif output == "channel":
                _to_channel(image, mask, off_x, off_y, width, height, RESULT_NAME)
            else:
                _to_selection(image, mask, off_x, off_y, width, height, OPERATIONS[operation])
        finally:
            image.undo_group_end()
        Gimp.displays_flush()
        if refine and reply.get("changed") == 0:
            Gimp.message(NOTHING_MOVED_ROUGH if rough else NOTHING_MOVED)
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


class _UserError(Exception):
    """Something the user must change in GIMP (wrong kind of drawable, empty selection)."""


def _fail(procedure, message: str, cancelled: bool = False):
    if cancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    Gimp.message(message)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def _target_layer(drawables):
    if len(drawables) != 1:
        raise _UserError("Meticulous Select works on one layer; select exactly one layer")
    drawable = drawables[0]
    if isinstance(drawable, Gimp.LayerMask):
        return Gimp.Layer.from_mask(drawable)
    if not isinstance(drawable, Gimp.Layer):
        raise _UserError("Meticulous Select works on a layer, not on a channel; pick a layer in the Layers dialog")
    return drawable


def _segment(image, layer, refine: bool, soft: bool, snap: bool = True, rough: bool = False,
             colour: bool = False, fine: bool = False):
    """Run the backend on the layer's pixels; return (mask bytes, off_x, off_y, width, height, the bridge's "done"
    reply). Changes nothing."""
    width, height = layer.get_width(), layer.get_height()
    _, off_x, off_y = layer.get_offsets()
    if refine and Gimp.Selection.is_empty(image):
        raise _UserError("Meticulous Refine Selection needs a rough selection first (e.g. a rectangle or lasso)")
    config = mos_client.load_config()
    workdir = mos_client.new_workdir()
    try:
        rect = Gegl.Rectangle.new(0, 0, width, height)
        pixels = layer.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
        image_path = os.path.join(workdir, "layer.rgba")
        mos_client.write_file(image_path, bytes(pixels))
        request = {
            "mode": "refine" if refine else "select",
            "image": image_path,
            "format": "rgba8",
            "width": width,
            "height": height,
            "output": os.path.join(workdir, "mask.y8"),
            "soft": soft,
            "snap": snap,
            "rough": rough,
            "colour": colour,
            "fine": fine,
        }
        if refine:
            # The selection lives in image coordinates; read the layer's area of it (outside the canvas is 0).
            sel_rect = Gegl.Rectangle.new(off_x, off_y, width, height)
            coarse = image.get_selection().get_buffer().get(sel_rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
            request["mask"] = os.path.join(workdir, "coarse.y8")
            mos_client.write_file(request["mask"], bytes(coarse))

        Gimp.progress_init("Meticulous Refine Selection" if refine else "Meticulous Select")

        def progress(stage: str, fraction: float) -> bool:
            Gimp.progress_set_text(f"MOS: {stage}")
            Gimp.progress_update(min(max(fraction, 0.0), 1.0))
            return True

        reply = mos_client.run_bridge(request, config, progress, workdir=workdir)
        mask = mos_client.read_file(request["output"], width * height)
        Gimp.progress_update(1.0)
        return mask, off_x, off_y, width, height, reply
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _image_sized(image, mask: bytes, off_x: int, off_y: int, width: int, height: int) -> bytes:
    return mos_client.paste_rows(mask, width, height, off_x, off_y, image.get_width(), image.get_height())


def _stored_format(image) -> str:
    """The 8-bit format a new channel stores its values in: perceptual (Y') unless the image is linear."""
    precision = image.get_precision()
    name = str(getattr(precision, "value_name", precision))
    return "Y u8" if name.endswith("_LINEAR") and not name.endswith("NON_LINEAR") else "Y' u8"


def _new_channel(image, name: str, data: bytes, fmt: str = "Y u8"):
    iw, ih = image.get_width(), image.get_height()
    channel = Gimp.Channel.new(image, name, iw, ih, 50.0, Gegl.Color.new("black"))
    buffer = channel.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, iw, ih), fmt, data)
    buffer.flush()
    image.insert_channel(channel, None, 0)
    return channel


def _to_selection(image, mask, off_x, off_y, width, height, operation) -> None:
    # select_item copies the channel's stored values into the (linear) selection as they are, so a partial value
    # must be stored unconverted: written "Y u8" into a perceptual channel, 54 would become 127 (measured in GIMP 3).
    data = _image_sized(image, mask, off_x, off_y, width, height)
    channel = _new_channel(image, RESULT_NAME, data, _stored_format(image))
    image.select_item(operation, channel)
    image.remove_channel(channel)


def _to_channel(image, mask, off_x, off_y, width, height, name) -> None:
    channel = _new_channel(image, name, _image_sized(image, mask, off_x, off_y, width, height))
    channel.set_visible(False)


def _to_layer_mask(layer, mask: bytes, width: int, height: int) -> None:
    rect = Gegl.Rectangle.new(0, 0, width, height)
    existing = layer.get_mask()
    if existing is None:
        new_mask = layer.create_mask(Gimp.AddMaskType.BLACK)
        buffer = new_mask.get_buffer()
        buffer.set(rect, "Y u8", mask)
        buffer.flush()
        layer.add_mask(new_mask)
    else:
        # Through the shadow buffer so that the change is recorded for undo.
        shadow = existing.get_shadow_buffer()
        shadow.set(rect, "Y u8", mask)
        shadow.flush()
        existing.merge_shadow(True)
        existing.update(0, 0, width, height)


Gimp.main(MeticulousSelect.__gtype__, sys.argv)
