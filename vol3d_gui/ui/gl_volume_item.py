"""A pyqtgraph GL item that ray-marches a single-channel 3-D texture in a fragment shader.

Like vispy's volume visual (which napari uses): the volume is uploaded once as a 16-bit
single-channel texture; window/level, colour map, mode and the overlay's colour,
opacity and threshold are uniforms or a tiny LUT texture, so changing them costs no
re-upload. Modes: MIP, translucent (front-to-back compositing through a transfer function
built from the window and colour map) and isosurface (first hit, gradient-shaded). A MIP
frame keeps each ray's maximum and is coloured as it is composited (MipShade), so a change of
window or colour map recolours it instead of ray-marching it again; the other modes' colours
depend on the window all along the ray, so there such a change starts a new frame.
An overlay Volume (saliency, mask) has its own texture and its own texture-space matrix,
so it is placed by its affine without resampling it onto the image grid.

The item's local space is texture space [0, 1]^3; its transform maps that onto RAS+ mm.
"""

from __future__ import annotations

import numpy as np
from OpenGL import GL
from pyqtgraph.opengl import GLGraphicsItem
from PySide6 import QtGui

from vol3d_gui.ui.gl_progressive import ProgressiveFrame, Shade, build_program

MODES = {"mip": 0, "translucent": 1, "iso": 2}

_FRAG_BODY = """
uniform sampler3D u_volume;
uniform sampler3D u_overlay;
uniform sampler2D u_lut;
uniform vec3 u_cam;
uniform int u_mode;
uniform float u_low;
uniform float u_high;
uniform int u_steps;
uniform vec3 u_shape;
uniform int u_has_overlay;
uniform mat4 u_ov_matrix;
uniform vec3 u_ov_color;
uniform float u_ov_opacity;
uniform float u_ov_threshold;
uniform float u_iso;
uniform int u_raw;

vec2 box_hits(vec3 ro, vec3 rd) {
    vec3 inv = 1.0 / rd;
    vec3 a = (vec3(0.0) - ro) * inv;
    vec3 b = (vec3(1.0) - ro) * inv;
    vec3 lo = min(a, b);
    vec3 hi = max(a, b);
    return vec2(max(max(lo.x, lo.y), lo.z), min(min(hi.x, hi.y), hi.z));
}

float win(float v) { return clamp((v - u_low) / max(u_high - u_low, 1e-6), 0.0, 1.0); }

float overlay_at(vec3 p) {
    vec3 q = (u_ov_matrix * vec4(p, 1.0)).xyz;
    if (any(lessThan(q, vec3(0.0))) || any(greaterThan(q, vec3(1.0)))) return 0.0;
    return TEX3D(u_overlay, q).r;
}

void main() {
    vec3 rd = normalize(v_tex - u_cam);
    vec2 t = box_hits(u_cam, rd);
    float t0 = max(t.x, 0.0);
    float t1 = t.y;
    if (t1 <= t0) discard;
    int n = int(clamp((t1 - t0) * float(u_steps), 2.0, 2.0 * float(u_steps)));
    float dt = (t1 - t0) / float(n);
    float mx = 0.0;
    float ovmax = 0.0;
    vec4 acc = vec4(0.0);
    bool hit = false;
    vec3 hitp = vec3(0.0);
    float iso = u_iso;
    for (int i = 0; i < 1024; i++) {
        if (i >= n) break;
        vec3 p = u_cam + rd * (t0 + (float(i) + 0.5) * dt);
        float v = TEX3D(u_volume, p).r;
        if (u_has_overlay == 1) {
            float o = overlay_at(p);
            if (o > u_ov_threshold) ovmax = max(ovmax, o);
        }
        if (u_mode == 0) {
            mx = max(mx, v);
        } else if (u_mode == 1) {
            float w = win(v);
            vec3 c = TEX2D(u_lut, vec2(w, 0.5)).rgb;
            // opacity per unit length, corrected for the step size
            float a = 1.0 - pow(1.0 - clamp(w * w * 0.06, 0.0, 0.99), dt * 256.0);
            acc.rgb += (1.0 - acc.a) * a * c;
            acc.a += (1.0 - acc.a) * a;
            if (acc.a > 0.98 && u_has_overlay == 0) break;
        } else {
            if (v >= iso) { hit = true; hitp = p; break; }
        }
    }
    if (u_raw == 1) {  // MIP's window-free values, for MipShade to colour when composited
        FRAGOUT = vec4(mx, ovmax, ovmax > 0.0 ? 1.0 : 0.0, 1.0);
        return;
    }
    vec3 col;
    float alpha;
    if (u_mode == 0) {
        col = TEX2D(u_lut, vec2(win(mx), 0.5)).rgb;
        alpha = 1.0;
    } else if (u_mode == 1) {
        col = acc.rgb;
        alpha = 1.0;
    } else {
        if (hit) {
            vec3 h = 1.0 / u_shape;
            vec3 g = vec3(TEX3D(u_volume, hitp + vec3(h.x, 0, 0)).r - TEX3D(u_volume, hitp - vec3(h.x, 0, 0)).r,
                          TEX3D(u_volume, hitp + vec3(0, h.y, 0)).r - TEX3D(u_volume, hitp - vec3(0, h.y, 0)).r,
                          TEX3D(u_volume, hitp + vec3(0, 0, h.z)).r - TEX3D(u_volume, hitp - vec3(0, 0, h.z)).r);
            vec3 nrm = length(g) > 0.0 ? normalize(-g) : -rd;
            float diff = abs(dot(nrm, -rd));
            col = vec3(0.92, 0.86, 0.76) * (0.25 + 0.75 * diff);
        } else {
            col = vec3(0.0);
        }
        alpha = 1.0;
    }
    if (ovmax > 0.0) {
        col = mix(col, u_ov_color, clamp(u_ov_opacity * (0.5 + 0.5 * ovmax), 0.0, 1.0));
    }
    FRAGOUT = vec4(col, alpha);
}
"""

_VERT = """
uniform mat4 u_mvp;
IN vec3 a_position;
OUT vec3 v_tex;
void main() { v_tex = a_position; gl_Position = u_mvp * vec4(a_position, 1.0); }
"""


_MIP_SHADE = """
uniform sampler2D u_image;
uniform sampler2D u_lut;
uniform float u_low;
uniform float u_high;
uniform vec3 u_ov_color;
uniform float u_ov_opacity;
IN vec2 v_uv;
void main() {
    vec4 r = TEX2D(u_image, v_uv);  // (the ray's maximum, the overlay's, overlay seen, coverage)
    float w = clamp((r.r - u_low) / max(u_high - u_low, 1e-6), 0.0, 1.0);
    vec3 col = TEX2D(u_lut, vec2(w, 0.5)).rgb;
    if (r.b > 0.0) {  // b and g are filtered alike where a preview is magnified: g / b is the
        float ov = r.g / r.b;  // overlay's maximum where it was seen, b how much of it was
        col = mix(col, u_ov_color, r.b * clamp(u_ov_opacity * (0.5 + 0.5 * ov), 0.0, 1.0));
    }
    FRAGOUT = vec4(col, r.a);
}
"""


class MipShade(Shade):
    """MIP's colours from its stored values: the maximum along a ray does not depend on the
    window (a monotone map of the maximum is the maximum of the mapped values), so a window,
    colour-map or overlay-colour change recolours the finished frame instead of ray-marching
    a new one (a W/L drag shows the full-quality frame at every step)."""

    frag = _MIP_SHADE

    def __init__(self, item: GLRayVolumeItem):
        super().__init__()
        self.item = item

    def key(self):
        it = self.item
        return (float(it.low), float(it.high), tuple(it.overlay_color), float(it.overlay_opacity),
                it._lut_generation)

    def bind(self, prog) -> None:
        it = self.item
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, it._textures.get("lut", 0))
        GL.glUniform1i(GL.glGetUniformLocation(prog, "u_lut"), 1)
        GL.glUniform1f(GL.glGetUniformLocation(prog, "u_low"), float(it.low))
        GL.glUniform1f(GL.glGetUniformLocation(prog, "u_high"), float(it.high))
        GL.glUniform3f(GL.glGetUniformLocation(prog, "u_ov_color"), *map(float, it.overlay_color))
        GL.glUniform1f(GL.glGetUniformLocation(prog, "u_ov_opacity"), float(it.overlay_opacity))

    def unbind(self) -> None:
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)


def _cube_triangles() -> np.ndarray:
    """36 vertices of the unit cube, every triangle wound counter-clockwise seen from outside."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float32)
    faces = []
    for axis in range(3):
        for side in (0, 1):
            quad = [c for c in corners if c[axis] == side]
            # order the 4 corners around the face
            others = [a for a in range(3) if a != axis]
            quad.sort(key=lambda c: np.arctan2(c[others[1]] - 0.5, c[others[0]] - 0.5))
            outward = np.zeros(3)
            outward[axis] = 1 if side else -1
            for tri in ((0, 1, 2), (0, 2, 3)):
                v = [quad[i] for i in tri]
                if np.dot(np.cross(v[1] - v[0], v[2] - v[0]), outward) < 0:
                    v = [v[0], v[2], v[1]]
                faces.extend(v)
    return np.array(faces, np.float32)


class GLRayVolumeItem(GLGraphicsItem.GLGraphicsItem):
    def __init__(self, parentItem=None):
        super().__init__()
        self.setParentItem(parentItem)
        self._program = None
        self._textures: dict[str, int] = {}
        self._pending: dict[str, np.ndarray] = {}
        self._vertices = _cube_triangles()
        self.shape = (1, 1, 1)
        self.mode = "mip"
        self.low, self.high = 0.0, 1.0  # window in texture units [0, 1]
        self.iso = 0.5  # isosurface level in texture units
        self.steps = 256
        self.lut = None
        self.overlay_matrix = np.eye(4, dtype=np.float32)
        self.overlay_color = (1.0, 0.25, 0.1)
        self.overlay_opacity = 0.6
        self.overlay_threshold = 0.3
        self.has_overlay = False
        self.upload_count = 0  # volume texture uploads (window changes must not add any)
        self.error: str | None = None
        self.frame: ProgressiveFrame | None = ProgressiveFrame()
        self.progressive_error: str | None = None  # why frames are drawn in one go, if they are
        self.on_incomplete = None  # callback() when a paint left part of the frame to do
        self._deferred = False  # this paint only uploaded textures; the frame comes next
        self._generation = 0  # volume and overlay textures uploaded so far: a new one restarts the frame
        self._lut_generation = 0  # colour maps uploaded: a new one restarts a frame stored as colours
        self._shade = MipShade(self)
        self._raw = False  # the march writes MIP's stored values (this paint has a MipShade)
        self.on_error = None  # callback(str) when the shader cannot be built

    # --- data ------------------------------------------------------------------------------
    def set_volume_texture(self, norm: np.ndarray) -> None:
        """``norm``: float array in [0, 1] on the display grid (x, y, z)."""
        self.shape = tuple(int(s) for s in norm.shape)
        self._pending["volume"] = self._to_u16(norm)
        self.update()

    def set_volume_u16(self, texture_zyx: np.ndarray) -> None:
        """A texture prepared off the GUI thread (viewer.prepare.display_grid): uint16, (z, y, x)."""
        z, y, x = texture_zyx.shape
        self.shape = (int(x), int(y), int(z))
        self._pending["volume"] = np.ascontiguousarray(texture_zyx, dtype=np.uint16)
        self.update()

    def set_overlay_texture(self, norm: np.ndarray | None, matrix: np.ndarray | None = None) -> None:
        self.has_overlay = norm is not None
        if norm is not None:
            self._pending["overlay"] = self._to_u16(norm)
            self.overlay_matrix = np.asarray(matrix, np.float32)
        self.update()

    def set_lut(self, lut: np.ndarray) -> None:
        self.lut = np.ascontiguousarray(lut, dtype=np.uint8)
        self._pending["lut"] = self.lut
        self.update()

    @staticmethod
    def _to_u16(norm: np.ndarray) -> np.ndarray:
        # GL wants x fastest: (z, y, x) C-order
        arr = np.clip(np.nan_to_num(norm, nan=0.0), 0.0, 1.0)
        return np.ascontiguousarray((arr * 65535).astype(np.uint16).transpose(2, 1, 0))

    # --- GL ----------------------------------------------------------------------------------
    def _build_program(self):
        return build_program(_VERT, "IN vec3 v_tex;\n" + _FRAG_BODY)

    def _upload(self) -> None:
        for key, arr in list(self._pending.items()):
            tex = self._textures.get(key)
            if tex is None:
                tex = self._textures[key] = int(GL.glGenTextures(1))
            if key == "lut":
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
                GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
                # RGBA8, not RGB8: llvmpipe samples it faster (a 459x426 MIP composite, which
                # reads the colour map per pixel: 2.4-2.6 -> 1.9-2.2 ms)
                rgba = np.empty((arr.shape[0], 4), np.uint8)
                rgba[:, :3], rgba[:, 3] = arr[:, :3], 255
                GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, arr.shape[0], 1, 0, GL.GL_RGBA,
                                GL.GL_UNSIGNED_BYTE, rgba)
                GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
                continue
            d, h, w = arr.shape
            GL.glBindTexture(GL.GL_TEXTURE_3D, tex)
            for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
                GL.glTexParameteri(GL.GL_TEXTURE_3D, p, GL.GL_LINEAR)
            for p in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T, GL.GL_TEXTURE_WRAP_R):
                GL.glTexParameteri(GL.GL_TEXTURE_3D, p, GL.GL_CLAMP_TO_EDGE)
            GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 2)
            GL.glTexImage3D(GL.GL_TEXTURE_3D, 0, GL.GL_R16, w, h, d, 0, GL.GL_RED, GL.GL_UNSIGNED_SHORT, arr)
            GL.glBindTexture(GL.GL_TEXTURE_3D, 0)
            if key == "volume":
                self.upload_count += 1
        # Qt's text rendering uploads glyphs with the default alignment: restore it
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        self._pending.clear()

    def paint(self):
        if "volume" not in self._textures and "volume" not in self._pending:
            return
        if self.error is not None:
            return
        uploaded = bool(self._pending.keys() - {"lut"})  # a colour map is tiny, and may not restart
        self._lut_generation += "lut" in self._pending
        try:
            if self._program is None:
                self._program = self._build_program()
            if self._pending:
                self._upload()
                self._generation += uploaded
        except Exception as exc:  # shader or texture failure: report, never crash the app
            self.error = f"{type(exc).__name__}: {exc}"
            if self.on_error is not None:
                self.on_error(self.error)
            return
        self._deferred = uploaded and self.frame is not None and not self.frame.finish
        if self._deferred:
            # uploading a texture is a paint's worth of work (~25 ms for the 20 MB of a
            # downsampled CT on llvmpipe): show the last frame, ray-march from the next paint
            try:
                self.frame.show_last(self._frame_shade())
            except Exception as exc:
                self.frame, self._deferred = None, False
                self.progressive_error = f"{type(exc).__name__}: {exc}"
            else:
                if self.on_incomplete is not None:
                    self.on_incomplete()
                return
        if self.frame is not None:
            try:
                shade = self._frame_shade()
                self._raw = shade is not None
                self.frame.paint(self._image_key(), int(self.steps), self._march, shade)
            except Exception as exc:
                # no framebuffer objects here (an old driver): draw each frame in one go
                self.frame = None
                self.progressive_error = f"{type(exc).__name__}: {exc}"
        if self.frame is None:
            self._raw = False
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
            self._march(int(self.steps))
        elif not self.frame.complete and self.on_incomplete is not None:
            self.on_incomplete()

    @property
    def complete(self) -> bool:
        """Whether the last paint showed the whole frame (not a preview or part of it)."""
        return (self.frame is None or self.frame.complete) and not self._deferred

    def finish_next_paint(self) -> None:
        """The next paint renders the whole frame, however long it takes (a grab)."""
        if self.frame is not None:
            self.frame.finish = True

    def _frame_shade(self) -> MipShade | None:
        return self._shade if self.mode == "mip" else None

    def _image_key(self) -> tuple:
        """Everything the ray-marched picture depends on, but the sample count and size; in
        MIP mode not the window, colour map or overlay colour, which MipShade applies."""
        key = (self.mvpMatrix().data(), self.mode, self.has_overlay, self.overlay_matrix.tobytes(),
               float(self.overlay_threshold), self._generation)
        if self.mode == "mip":
            return key
        return key + (float(self.iso), float(self.low), float(self.high), tuple(self.overlay_color),
                      float(self.overlay_opacity), self._lut_generation)

    def _march(self, steps: int) -> None:
        """Ray-march the cube into the bound framebuffer (blending is the caller's)."""
        mvp = np.array(self.mvpMatrix().data(), dtype=np.float32)
        cam = self.modelViewMatrix().inverted()[0].map(QtGui.QVector3D())
        det = np.linalg.det(np.array(self.transform().data(), dtype=np.float64).reshape(4, 4)[:3, :3])

        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_CULL_FACE)
        # draw the far faces: one fragment per pixel, even with the camera inside the box
        GL.glCullFace(GL.GL_FRONT if det > 0 else GL.GL_BACK)
        prog = self._program
        GL.glUseProgram(prog)
        try:
            units = (("volume", GL.GL_TEXTURE_3D, "u_volume"), ("overlay", GL.GL_TEXTURE_3D, "u_overlay"),
                     ("lut", GL.GL_TEXTURE_2D, "u_lut"))
            for unit, (key, target, name) in enumerate(units):
                GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
                GL.glBindTexture(target, self._textures.get(key, 0))
                GL.glUniform1i(GL.glGetUniformLocation(prog, name), unit)
            u = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
            GL.glUniformMatrix4fv(u("u_mvp"), 1, False, mvp)
            GL.glUniform3f(u("u_cam"), cam.x(), cam.y(), cam.z())
            GL.glUniform1i(u("u_mode"), MODES[self.mode])
            GL.glUniform1i(u("u_raw"), int(self._raw))
            GL.glUniform1f(u("u_low"), float(self.low))
            GL.glUniform1f(u("u_high"), float(self.high))
            GL.glUniform1i(u("u_steps"), int(steps))
            GL.glUniform1f(u("u_iso"), float(self.iso))
            GL.glUniform3f(u("u_shape"), *map(float, self.shape))
            GL.glUniform1i(u("u_has_overlay"), int(self.has_overlay and "overlay" in self._textures))
            GL.glUniformMatrix4fv(u("u_ov_matrix"), 1, True, self.overlay_matrix)
            GL.glUniform3f(u("u_ov_color"), *map(float, self.overlay_color))
            GL.glUniform1f(u("u_ov_opacity"), float(self.overlay_opacity))
            GL.glUniform1f(u("u_ov_threshold"), float(self.overlay_threshold))
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
            GL.glEnableVertexAttribArray(0)
            GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, False, 0, self._vertices)
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, len(self._vertices))
            GL.glDisableVertexAttribArray(0)
        finally:
            GL.glUseProgram(0)
            for unit, target in enumerate((GL.GL_TEXTURE_3D, GL.GL_TEXTURE_3D, GL.GL_TEXTURE_2D)):
                GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
                GL.glBindTexture(target, 0)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glDisable(GL.GL_CULL_FACE)
            GL.glEnable(GL.GL_DEPTH_TEST)
