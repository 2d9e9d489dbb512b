"""Detection building blocks (Faster R-CNN, TF Object Detection API style).

Pure JAX, float32, static shapes, jit- and vmap-friendly. Boxes are always
(ymin, xmin, ymax, xmax) in one consistent coordinate system.

- `boxes`: area, IoU, the FasterRcnnBoxCoder encode/decode, clipping.
- `nms`: greedy single-class NMS and multi-class NMS with a total cap.
- `roi_align`: `tf.image.crop_and_resize` semantics, gather-based.
- `anchors`: grid anchors like TF's grid_anchor_generator.
- `sampling`: ArgMaxMatcher-style matching and balanced minibatch sampling.
- `targets`: the RPN's and the box classifier's training targets, per image.

These are libraries: nothing here registers itself anywhere.
"""
