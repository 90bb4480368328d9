"""Conv3D classifier in the family of the Keras example "3D image classification from CT
scans": blocks of Conv3D -> MaxPool3D -> BatchNorm, global average pooling, a dense layer,
dropout and a softmax over the classes (a binary model has two outputs)."""

from __future__ import annotations

GRADCAM_LAYER = "gradcam_conv"


def build_classifier(input_shape, n_classes: int, width: int = 16, dense: int | None = None,
                     dropout: float = 0.3, name: str = "vol3d_classifier", stem_stride: int = 1,
                     pooling: str = "avg", bn_momentum: float = 0.99, head: str = "dense",
                     cam_stride: int = 8, cam_dilation: int = 1, arch: str = "plain",
                     shape_features: int = 0):
    """Four conv blocks of widths (w, w, 2w, 4w); the last Conv3D is named GRADCAM_LAYER.

    The fourth block's convolution runs at 1/8 of the input resolution, which is the grid
    Grad-CAM explains (8^3 for a 64^3 input).

    ``stem_stride=2`` makes the first convolution strided instead of full-resolution
    convolution + pooling: the same grids from the second block on, but about 4x less
    compute per sample on a CPU (the full-resolution first block dominates a 64^3 input),
    which is what makes training a 64^3 model on a laptop practical.

    ``pooling="max"`` replaces the global average by a global max: for a small focal
    finding (a lesion of a few voxels in a whole abdomen) an average dilutes the one place
    that matters, while a max lets one detector channel answer "is it anywhere". Grad-CAM
    is unaffected (it reads the last convolution's activations and gradients).

    ``bn_momentum`` below Keras' 0.99 lets the BatchNorm running statistics (used at
    inference) settle within the few hundred steps of a small training set.

    ``head="cam"`` builds the network Grad-CAM can explain (Zhou et al. 2016, "Learning deep
    features for discriminative localization"): the last block is Conv3D -> BatchNorm ->
    ReLU with no pooling after it, and the class scores are a linear function of its global
    average. Each location's activations then add to the score in proportion to the
    class's weights, and nothing else; in the "dense" head a BatchNorm, a pool and a hidden
    layer sit between the Grad-CAM layer and the score, so the map shows where the
    activations are large (body walls, bone) rather than where the evidence is. The
    phantom-lesion model's pointing game went from 40% (dense, max) to the figure in
    models/README.md.

    ``cam_stride=4`` leaves out the third block's pooling, so the fourth block (the Grad-CAM
    layer) runs at 1/4 of the input (12^3 for 48^3: cells of 4 voxels, small enough to tell
    which side of an organ a lesion is on). ``cam_dilation=2`` would keep the receptive field
    of the stride-8 network; see models/README.md for what it did to the pointing game.

    ``arch="resnet"`` replaces the four plain blocks by a small 3-D ResNet (``residual_trunk``)
    with the same 1/8 Grad-CAM grid; ``shape_features=K`` lets the dense head also see the
    input's erosion profile (``erosion_profile``): both for binary shape masks such as
    AdrenalMNIST3D (models/README.md, "adrenal3d")."""
    import keras
    from keras import layers

    if n_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    inputs = keras.Input(shape=(*map(int, input_shape), 1), name="volume")
    x = inputs
    widths = (width, width, 2 * width, 4 * width)
    if stem_stride not in (1, 2):
        raise ValueError("stem_stride must be 1 or 2")
    if head not in ("dense", "cam"):
        raise ValueError(f"head must be 'dense' or 'cam', got {head!r}")
    if cam_stride not in (4, 8):
        raise ValueError("cam_stride must be 4 or 8")
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    if head == "cam" and pooling != "avg":
        raise ValueError("the cam head averages: pooling must be 'avg'")
    if arch not in ("plain", "resnet"):
        raise ValueError(f"arch must be 'plain' or 'resnet', got {arch!r}")
    if shape_features < 0:
        raise ValueError("shape_features must be >= 0")
    if arch == "resnet":
        if head != "dense" or cam_stride != 8 or cam_dilation != 1:
            raise ValueError("the resnet trunk has the dense head and the 1/8 Grad-CAM grid only")
        x = residual_trunk(inputs, width, stem_stride, bn_momentum)
    for i, w in enumerate(widths if arch == "plain" else ()):
        last = i == len(widths) - 1
        dilation = cam_dilation if last else 1
        if last and head == "cam":
            x = layers.Conv3D(w, 3, padding="same", use_bias=False, dilation_rate=dilation,
                              name=f"conv{i + 1}")(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i + 1}")(x)
            x = layers.Activation("relu", name=GRADCAM_LAYER)(x)
            break
        strided = i == 0 and stem_stride == 2
        x = layers.Conv3D(w, 3, strides=2 if strided else 1, padding="same", activation="relu",
                          dilation_rate=dilation, name=GRADCAM_LAYER if last else f"conv{i + 1}")(x)
        if not strided and not (i == 2 and cam_stride == 4):
            x = layers.MaxPool3D(2, padding="same", name=f"pool{i + 1}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i + 1}")(x)
    if pooling == "avg":
        x = layers.GlobalAveragePooling3D(name="gap")(x)
    else:
        x = layers.GlobalMaxPooling3D(name="gmp")(x)
    if shape_features:
        x = layers.Concatenate(name="with_shape")([x, erosion_profile(inputs, shape_features, bn_momentum)])
    if head == "dense":
        x = layers.Dense(dense or 8 * width, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    # float32 output even under a mixed-precision policy, so probabilities stay exact
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def residual_trunk(inputs, width: int, stem_stride: int, bn_momentum: float):
    """A small 3-D ResNet (He et al. 2016; MedMNIST v2 benchmarks a 3-D ResNet-18): a stem
    convolution to 1/2 of the input (strided, or full resolution then max-pooled), then one
    basic block per stage at 1/2, 1/4 and 1/8 with widths (w, 2w, 4w). The last block's
    output (after the addition and its ReLU) is GRADCAM_LAYER, on the plain network's 1/8 grid.
    One block per stage, not ResNet-18's two: about 1.7x the plain network's multiply-adds at 48^3,
    which keeps a training within minutes on two CPU cores."""
    from keras import layers

    x = layers.Conv3D(width, 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    if stem_stride == 1:
        x = layers.MaxPool3D(2, padding="same", name="stem_pool")(x)
    for i, (w, stride) in enumerate(((width, 1), (2 * width, 2), (4 * width, 2))):
        name = f"block{i + 1}"
        y = layers.Conv3D(w, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn1")(y)
        y = layers.Activation("relu", name=f"{name}_relu1")(y)
        y = layers.Conv3D(w, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn2")(y)
        if stride != 1 or x.shape[-1] != w:  # a projection where the shape changes
            x = layers.Conv3D(w, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_proj_bn")(x)
        x = layers.Add(name=f"{name}_add")([x, y])
        x = layers.Activation("relu", name=GRADCAM_LAYER if i == 2 else f"{name}_out")(x)
    return x


def erosion_profile(inputs, steps: int, bn_momentum: float):
    """The input's mean after 0, 1, ..., ``steps`` grey-scale erosions, batch-normalised:
    (N, steps + 1) features for the head. For a binary mask the k-th mean is the share of
    voxels at depth >= k inside the shape, so the profile is the shape's volume and a
    histogram of its thickness: what tells an enlarged adrenal gland from a normal one
    (on AdrenalMNIST3D 64^3 the mean Euclidean depth of the mask alone ranks the test split
    with AUC 0.90), which a global AVERAGE of convolution features only sees relative to the
    grid. Erosions alternate the 6- and 26-neighbourhood (an octagonal approximation of the
    Euclidean distance). Built from Keras' own layers (negate, max-pool, maximum), so the
    bundle still loads in safe mode; it has no weights but the BatchNormalization's."""
    from keras import layers

    neg = layers.Rescaling(-1.0, name="shape_negate")(inputs)  # erosion = -(max-pool of -x)
    means = [layers.GlobalAveragePooling3D(name="shape_mean0")(neg)]
    for k in range(1, steps + 1):
        if k % 2:
            neg = layers.Maximum(name=f"shape_erode{k}")(
                [layers.MaxPool3D(size, strides=1, padding="same", name=f"shape_erode{k}_{a}")(neg)
                 for a, size in enumerate(((3, 1, 1), (1, 3, 1), (1, 1, 3)))])
        else:
            neg = layers.MaxPool3D(3, strides=1, padding="same", name=f"shape_erode{k}")(neg)
        means.append(layers.GlobalAveragePooling3D(name=f"shape_mean{k}")(neg))
    profile = layers.Concatenate(name="shape_profile")(means)
    return layers.BatchNormalization(momentum=bn_momentum, name="shape_bn")(profile)
