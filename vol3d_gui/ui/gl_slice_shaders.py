"""The GLSL of the slice views, and the programs made from it.

One pass draws a view: the plane through the window and colour map, and over it, in the
same fragment, each overlay whose grid is aligned with the volume's (masks and Grad-CAM
maps are: core.resample.aligned_axes), read from the 2-D plane of it this slice cuts.
Measured under llvmpipe on a 415x386 view, that pass with a trilinear saliency map costs
about what the plane alone did before (~1 ms), where a second, blended pass sampling the
map in 3-D cost 2-4.5 ms more, and llvmpipe runs every extra pass over every pixel it
covers. An oblique overlay (another scan at an angle) is still drawn by its own pass over a
3-D texture, blended over the first.

Values are read exactly (texelFetch of the plane in its own dtype) and at the centre of the
base voxel a pixel shows, as core.resample and the CPU views sample them.
"""

from __future__ import annotations

from OpenGL import GL
from OpenGL.GL import shaders
from PySide6 import QtGui

MAX_FUSED = 4  # overlays drawn in the plane's own pass (2 texture units each, 16 guaranteed)

# the plane's quad, in device pixels; v_ab: base voxel coordinates (a, b), centres on integers
_PLANE_VERT = """#version 140
in vec2 a_position;
uniform vec2 u_viewport;  // device pixels
uniform vec3 u_fa;        // device pixel -> in-plane index a (slice, zoom, pan and flip)
uniform vec3 u_fb;        // device pixel -> in-plane index b
out vec2 v_ab;
{smooth_decl}
void main() {{
    gl_Position = vec4(a_position / u_viewport * 2.0 - 1.0, 0.0, 1.0);
    vec3 f = vec3(a_position, 1.0);
    v_ab = vec2(dot(u_fa, f), dot(u_fb, f));
    vec3 q = vec3(v_ab, 1.0);
{smooth_body}
}}
"""
# a coarse map's texture coordinates, interpolated across the quad (see plane_source)
_SMOOTH_DECL = """uniform vec3 u_os{i};
uniform vec3 u_ot{i};
uniform vec2 u_on{i};
out vec2 v_uv{i};"""
_SMOOTH_BODY = """    v_uv{i} = (vec2(dot(u_os{i}, q), dot(u_ot{i}, q)) + 0.5) / u_on{i};"""

_PLANE_FRAG = """#version 140
in vec2 v_ab;
out vec4 fragColor;
uniform {kind}sampler2D u_plane;  // the plane's raw values: texel (b, a), or (a, b) transposed
uniform ivec2 u_size;        // (na, nb)
uniform float u_low;
uniform float u_scale;       // 255 / window width
uniform sampler2D u_lut;     // base colour map, 256 x 1
{overlay_uniforms}
void main() {{
    // a pixel whose centre falls on a voxel boundary (at whole and half zooms a column of them)
    // goes to the upper voxel, as core.resample's floor(x + 0.5) does, whatever the rounding of
    // v_ab's interpolation over this quad (a few float ulps): a repaint under the crosshair
    // lines draws strips, whose rounding differed from the whole picture's, and a column of
    // the next voxel was left where a line had been. Exact per pixel from gl_FragCoord instead
    // costs llvmpipe 0.45 ms a 415x386 view (+17%, in-process A/B).
    vec2 ab = clamp(floor(v_ab + (0.5 + 1.0 / 512.0)), vec2(0.0), vec2(u_size - 1));
    float value = float(texelFetch(u_plane, ivec2({texel}), 0).r);
    // as core.windowing.apply_window: truncated to 8 bits
    float g = {grey_level};
    vec3 col = {base_colour};
    vec3 p = vec3(ab, 1.0);
{overlays}
    fragColor = vec4(col, 1.0);
}}
"""

_FUSED_UNIFORMS = """uniform sampler2D u_ov{i};   // the overlay's plane: values (nearest) or 8-bit fractions (linear)
uniform vec3 u_os{i};        // (a, b, 1) -> its texel column
uniform vec3 u_ot{i};        // (a, b, 1) -> its texel row
uniform vec2 u_on{i};        // its size (columns, rows)
uniform vec4 u_op{i};        // threshold, vmin, 255 / (vmax - vmin), opacity
uniform vec3 u_oc{i};        // a binary mask's one colour
uniform vec2 u_or{i};        // a quantised map: value = x + fraction * y
uniform sampler2D u_ol{i};   // its colour map, 256 x 1"""

_FUSED_NEAREST = """    {{
        vec2 r = floor(vec2(dot(u_os{i}, p), dot(u_ot{i}, p)) + 0.5);
        if (all(greaterThanEqual(r, vec2(0.0))) && all(lessThan(r, u_on{i}))) {{
            float v = texelFetch(u_ov{i}, ivec2(r), 0).r;
{colour}
        }}
    }}"""

_FUSED_SMOOTH = """    {{
        if (all(greaterThanEqual(v_uv{i}, vec2(0.0))) && all(lessThanEqual(v_uv{i}, vec2(1.0)))) {{
            float v = u_or{i}.x + texture(u_ov{i}, v_uv{i}).r * u_or{i}.y;
{colour}
        }}
    }}"""

_FUSED_LINEAR = """    {{
        vec2 c = vec2(dot(u_os{i}, p), dot(u_ot{i}, p));
        if (all(greaterThanEqual(c, vec2(-0.5))) && all(lessThanEqual(c, u_on{i} - 0.5))) {{
            float v = u_or{i}.x + texture(u_ov{i}, (c + 0.5) / u_on{i}).r * u_or{i}.y;
{colour}
        }}
    }}"""

# NaN (outside a map) compares false and never shows; a binary mask's 0 is background
# whatever the threshold; blended as the CPU views and GL's premultiplied blending do
_FUSED_MASK_COLOUR = """            if (v > u_op{i}.x && v > 0.0) col = mix(col, u_oc{i}, u_op{i}.w);"""
_FUSED_MAP_COLOUR = """            if (v > u_op{i}.x) {{
                int level = int(floor(clamp((v - u_op{i}.y) * u_op{i}.z, 0.0, 255.0)));
                col = mix(col, texelFetch(u_ol{i}, ivec2(level, 0), 0).rgb, u_op{i}.w);
            }}"""

# an oblique overlay's own pass, blended (premultiplied) over the plane on its screen box
_VERT = """#version 140
in vec2 a_position;
void main() { gl_Position = vec4(a_position, 0.0, 1.0); }
"""

_OVERLAY_FRAG = """#version 140
out vec4 fragColor;
uniform ivec3 u_n;
uniform mat4 u_frag_to_voxel;
uniform mat4 u_ovm;          // base voxel -> overlay voxel
uniform vec3 u_ovn;          // overlay shape, numpy order
uniform vec4 u_ovp;          // threshold, vmin, 255 / (vmax - vmin), opacity
uniform vec3 u_ovcol;        // a binary mask's one colour
uniform vec2 u_ovrange;      // a quantised map: value = x + fraction * y
uniform sampler2D u_ovlut;   // its colour map, 256 x 1
uniform sampler3D u_ov;

void main() {{
    // sampled at the centre of the base voxel drawn here, as core.resample does on the CPU
    vec3 ijk = floor((u_frag_to_voxel * vec4(gl_FragCoord.xy, 0.0, 1.0)).xyz + 0.5);
    if (any(lessThan(ijk, vec3(0.0))) || any(greaterThanEqual(ijk, vec3(u_n)))) discard;
    vec3 c = (u_ovm * vec4(ijk, 1.0)).xyz;
    float v;
{sample}
    if (!(v > u_ovp.x)) discard;  // NaN (outside the map) never shows
{colour}
}}
"""
_NEAREST = """    vec3 r = floor(c + 0.5);
    if (any(lessThan(r, vec3(0.0))) || any(greaterThanEqual(r, u_ovn))) discard;
    v = texelFetch(u_ov, ivec3(r).{swz}, 0).r;"""
_LINEAR = """    if (any(lessThan(c, vec3(-0.5))) || any(greaterThan(c, u_ovn - 0.5))) discard;
    v = u_ovrange.x + texture(u_ov, ((c + 0.5) / u_ovn).{swz}).r * u_ovrange.y;"""
_MASK_COLOUR = """    if (!(v > 0.0)) discard;  // a binary mask: 0 is background whatever the threshold
    fragColor = vec4(u_ovcol * u_ovp.w, u_ovp.w);  // premultiplied"""
_MAP_COLOUR = """    vec3 rgb = texelFetch(u_ovlut, ivec2(int(floor(clamp((v - u_ovp.y) * u_ovp.z, 0.0, 255.0))), 0), 0).rgb;
    fragColor = vec4(rgb * u_ovp.w, u_ovp.w);  // premultiplied"""

_SOLID_FRAG = """#version 140
out vec4 fragColor;
uniform vec4 u_colour;
void main() { fragColor = u_colour; }
"""


def plane_source(kind: str, grey: bool = True, fused=(), transposed: bool = False) -> str:
    """The plane's fragment shader for a texture of sampler kind '' (float), 'i' or 'u', with
    ``fused``: (order, binary, smooth) of each overlay drawn in the same pass, bottom first.
    Specialised (a grey map needs no table, a NaN test only for floats): llvmpipe runs every
    branch a fragment could take.

    ``smooth``: a map much coarser than the plane (a Grad-CAM map: tens of base voxels a
    cell) is sampled where the pixel is rather than at the centre of the base voxel it
    shows, its coordinates interpolated across the quad instead of computed per fragment
    (a fifth of the pass under llvmpipe). The sample moves by at most half a base voxel: a
    fraction of a percent of one of the map's cells."""
    level = "floor(clamp((value - u_low) * u_scale, 0.0, 255.0))"
    if kind == "":  # a float volume: NaN shows black
        level = f"isnan(value) ? 0.0 : {level}"
    blocks = []
    uniforms = []
    for i, (order, binary, smooth) in enumerate(fused):
        colour = (_FUSED_MASK_COLOUR if binary else _FUSED_MAP_COLOUR).format(i=i)
        block = _FUSED_SMOOTH if smooth else _FUSED_LINEAR if order == 1 else _FUSED_NEAREST
        blocks.append(block.format(i=i, colour=colour))
        decl = _FUSED_UNIFORMS.format(i=i)
        if smooth:  # its sampling uniforms live in the vertex shader
            decl = "\n".join(line for line in decl.splitlines() if not line.startswith(
                (f"uniform vec3 u_os{i}", f"uniform vec3 u_ot{i}", f"uniform vec2 u_on{i}"))) + f"\nin vec2 v_uv{i};"
        uniforms.append(decl)
    return _PLANE_FRAG.format(
        kind=kind, grey_level=level, texel="ab" if transposed else "ab.y, ab.x",
        base_colour="vec3(g / 255.0)" if grey else "texelFetch(u_lut, ivec2(int(g), 0), 0).rgb",
        overlay_uniforms="\n".join(uniforms),
        overlays="\n".join(blocks))


def overlay_source(order: int, binary: bool, x_fast: bool) -> str:
    """An oblique overlay's pass, drawn blended (premultiplied) on its screen box only."""
    swz = "xyz" if x_fast else "zyx"
    return _OVERLAY_FRAG.format(sample=(_LINEAR if order == 1 else _NEAREST).format(swz=swz),
                                colour=_MASK_COLOUR if binary else _MAP_COLOUR)


class Program:
    """A linked program and its uniform locations, looked up once (a lookup per uniform per
    paint was a fifth of a paint's Python time)."""

    def __init__(self, vert: str, frag: str):
        vs = shaders.compileShader(vert, GL.GL_VERTEX_SHADER)
        fs = shaders.compileShader(frag, GL.GL_FRAGMENT_SHADER)
        self.id = shaders.compileProgram(vs, fs, validate=False)
        GL.glBindAttribLocation(self.id, 0, "a_position")
        GL.glLinkProgram(self.id)
        self._locations: dict[str, int] = {}

    def loc(self, name: str) -> int:
        loc = self._locations.get(name)
        if loc is None:
            loc = self._locations[name] = GL.glGetUniformLocation(self.id, name)
        return loc


def plane_vertex_source(fused=()) -> str:
    smooth = [i for i, (_order, _binary, sm) in enumerate(fused) if sm]
    return _PLANE_VERT.format(smooth_decl="\n".join(_SMOOTH_DECL.format(i=i) for i in smooth),
                              smooth_body="\n".join(_SMOOTH_BODY.format(i=i) for i in smooth))


def build_slice_program(kind: str, grey: bool = True, fused=(), transposed: bool = False) -> Program:
    """Compile and link the plane's shader in the current context (GLSL 1.40: texelFetch and
    integer samplers); raises when the context cannot (the caller falls back to the CPU)."""
    ctx = QtGui.QOpenGLContext.currentContext()
    if ctx is None or ctx.isOpenGLES() or ctx.format().version() < (3, 1):
        version = None if ctx is None else ctx.format().version()
        raise RuntimeError(f"the slice shader needs desktop OpenGL >= 3.1, this context has {version}")
    return Program(plane_vertex_source(fused), plane_source(kind, grey, fused, transposed))


def build_overlay_program(order: int, binary: bool, x_fast: bool) -> Program:
    return Program(_VERT, overlay_source(order, binary, x_fast))


def build_solid_program() -> Program:
    """One colour (the crosshair lines, the background of a strip, the frame's mark)."""
    return Program(_VERT, _SOLID_FRAG)
