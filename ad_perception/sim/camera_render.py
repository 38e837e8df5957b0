"""Camera rendering with moderngl on EGL (llvmpipe is enough): one pass writes colour and a
per-pixel instance id (multiple render targets), so the visible 2D boxes come from exactly the
pixels the image shows.

The projection is built from the pinhole K with OpenCV's pixel convention (pixel centres at
integer coordinates), so a point projected with K lands on the pixel the rasteriser filled.
"""

from __future__ import annotations

import numpy as np

from ad_perception.sim.meshes import Mesh

EGL_HINT = (
    "the embedded-world renderer needs an OpenGL 3.3+ context through EGL; on Debian/Ubuntu "
    "install the packages libegl1 libegl-mesa0 libgl1-mesa-dri (software rendering with Mesa "
    "llvmpipe is enough, no GPU is needed)"
)

_VERTEX = """
#version 330
uniform mat4 view_projection;
in vec3 in_pos; in vec3 in_normal; in vec3 in_color; in float in_material; in int in_instance;
out vec3 v_pos; out vec3 v_normal; out vec3 v_color; flat out float v_material;
flat out int v_instance;
void main() {
    v_pos = in_pos; v_normal = in_normal; v_color = in_color; v_material = in_material;
    v_instance = in_instance;
    gl_Position = view_projection * vec4(in_pos, 1.0);
}
"""

_FRAGMENT = """
#version 330
uniform vec3 eye; uniform vec3 sun_dir; uniform vec3 sun_color; uniform vec3 ambient;
uniform vec3 sky_color; uniform float exposure; uniform float haze;
in vec3 v_pos; in vec3 v_normal; in vec3 v_color; flat in float v_material;
flat in int v_instance;
layout(location = 0) out vec4 out_color;
layout(location = 1) out int out_instance;
uniform sampler2D lattice;  // random values at the integer points, repeating every NOISE_PERIOD
// Value noise with smoothstep fade: one bilinear fetch at the faded position interpolates the
// four lattice values exactly as mix(mix(h00, h10, f.x), mix(h01, h11, f.x), f.y) would.
float noise(vec2 p) {
    vec2 i = floor(p); vec2 f = fract(p); f = f * f * (3.0 - 2.0 * f);
    return texture(lattice, (i + f + 0.5) / NOISE_PERIOD).r;
}
void main() {
    vec3 n = normalize(v_normal);
    vec3 to_eye = eye - v_pos;
    if (dot(n, to_eye) < 0.0) n = -n;
    vec3 albedo = v_color;
    int m = int(v_material + 0.5);
    float shine = 0.0;
    if (m == 1) {            // asphalt: grain plus large worn patches
        albedo *= 0.8 + 0.25 * noise(v_pos.xy * 6.0) + 0.15 * noise(v_pos.xy * 0.15);
    } else if (m == 2) {     // facade: floors of windows on vertical faces
        albedo *= 0.9 + 0.15 * noise(v_pos.xy * 2.0 + v_pos.z);
        if (abs(n.z) < 0.5) {
            vec2 t = vec2(-n.y, n.x);
            float u = dot(v_pos.xy, t);
            if (v_pos.z > 1.2 && fract(u / 3.0) > 0.25 && fract(u / 3.0) < 0.75
                && fract(v_pos.z / 3.2) > 0.3 && fract(v_pos.z / 3.2) < 0.8) {
                albedo = vec3(0.12, 0.16, 0.22) + 0.1 * noise(vec2(u, v_pos.z) * 0.7);
                shine = 0.25;
            }
        }
    } else if (m == 3) {     // grass and dirt
        albedo *= 0.65 + 0.45 * noise(v_pos.xy * 1.3) + 0.2 * noise(v_pos.xy * 9.0);
    } else if (m == 4) {     // road paint, a little worn
        albedo *= 0.85 + 0.15 * noise(v_pos.xy * 4.0);
    } else if (m == 5) {     // concrete slabs with seams
        vec2 g = fract(v_pos.xy / 1.5);
        albedo *= (min(g.x, g.y) < 0.04 ? 0.75 : 1.0) * (0.92 + 0.12 * noise(v_pos.xy * 5.0));
    } else if (m == 6) {     // foliage
        albedo *= 0.6 + 0.6 * noise(v_pos.xy * 3.0 + v_pos.z * 2.0);
    } else if (m == 7) {
        shine = 0.35;
    }
    float diffuse = max(dot(n, sun_dir), 0.0);
    vec3 v = normalize(to_eye);
    float spec = pow(max(dot(reflect(-sun_dir, n), v), 0.0), 24.0) * shine;
    vec3 lit = albedo * (ambient + sun_color * diffuse) + sun_color * spec;
    float fog = 1.0 - exp(-length(to_eye) * haze / 100.0);
    lit = mix(lit, sky_color, fog);
    lit = vec3(1.0) - exp(-lit * exposure * 1.6);   // filmic-ish tone curve
    out_color = vec4(lit, 1.0);
    out_instance = v_instance;
}
"""

_SKY_VERTEX = """
#version 330
in vec2 in_xy; out vec2 v_xy;
void main() { v_xy = in_xy; gl_Position = vec4(in_xy, 0.999, 1.0); }
"""

_SKY_FRAGMENT = """
#version 330
uniform mat3 world_from_ndc_ray; uniform vec3 sky_color; uniform float exposure;
in vec2 v_xy;
layout(location = 0) out vec4 out_color;
layout(location = 1) out int out_instance;
void main() {
    vec3 ray = normalize(world_from_ndc_ray * vec3(v_xy, 1.0));
    float up = clamp(ray.z, 0.0, 1.0);
    vec3 c = mix(sky_color * 1.25 + vec3(0.08), sky_color * 0.8, pow(up, 0.5));
    out_color = vec4(vec3(1.0) - exp(-c * exposure * 1.6), 1.0);
    out_instance = 0;
}
"""

# Silhouettes for the occlusion ground truth: each actor is drawn alone with its own constant
# depth, decreasing from one actor to the next, into a depth-only target with the depth test
# on.  An actor's first fragment on a pixel always passes (everything there so far is farther),
# its later fragments on that pixel fail (equal is not less), so the samples-passed query of
# the actor's draw counts the pixels its triangles cover, each once, with nothing in front.
_SILHOUETTE_VERTEX = """
#version 330
uniform mat4 view_projection;
in vec3 in_pos;
void main() { gl_Position = view_projection * vec4(in_pos, 1.0); }
"""

_SILHOUETTE_FRAGMENT = """
#version 330
uniform float layer_depth;
void main() { gl_FragDepth = layer_depth; }
"""

NOISE_PERIOD = 256  # lattice cells before the procedural textures repeat
NOISE_SEED = 20240611  # fixed: the textures are part of the world's look, not of the drive

FLOATS_PER_VERTEX = 13  # pos 3, normal 3, colour 3, material 1, instance 1 (int bits), pad 2


def gl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip-from-eye matrix reproducing u = fx x/z + cx with pixel centres at integers;
    the eye frame is the optical frame with y and z negated."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2 * fx / width, 0.0, 1.0 - 2.0 * (cx + 0.5) / width, 0.0],
            [0.0, 2 * fy / height, 2.0 * (cy + 0.5) / height - 1.0, 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2.0 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def vertex_array(mesh: Mesh, instance_per_face: np.ndarray) -> np.ndarray:
    """Non-indexed interleaved vertex data: flat shading needs a normal per face corner."""
    corners = mesh.vertices[mesh.faces].reshape(-1, 3)
    normals = np.repeat(mesh.face_normals(), 3, axis=0)
    colors = np.repeat(mesh.face_colors, 3, axis=0)
    data = np.zeros((len(corners), FLOATS_PER_VERTEX), dtype=np.float32)
    data[:, 0:3], data[:, 3:6], data[:, 6:9] = corners, normals, colors
    data[:, 9] = np.repeat(mesh.face_materials, 3)
    data[:, 10].view(np.int32)[:] = np.repeat(instance_per_face.astype(np.int32), 3)
    return data


def _load_llvm_users_first() -> None:
    """Mesa's software EGL driver loads its own LLVM; triton (imported by ``torch._dynamo``,
    which torchvision's model modules import) loads another, and loading triton after the
    EGL context exists crashes the process (measured: a bag generated in-process, then
    ``import torch._dynamo``: segmentation fault). Where this process already uses torch,
    load that side first; the other order works."""
    import sys

    if "torch" in sys.modules:
        import torch._dynamo  # noqa: F401


class CameraRenderer:
    """Holds the GL context, the static world on the GPU and one dynamic buffer for actors."""

    def __init__(
        self, width: int, height: int, K: np.ndarray, near: float = 0.3, far: float = 400.0
    ) -> None:
        _load_llvm_users_first()
        try:
            import moderngl

            self._ctx = moderngl.create_standalone_context(backend="egl", require=330)
        except Exception as err:  # the causes differ per driver; all mean "no EGL context"
            raise RuntimeError(f"cannot start the OpenGL renderer ({err}); {EGL_HINT}") from err
        self.width, self.height = width, height
        self.projection = gl_projection(K, width, height, near, far)
        ctx = self._ctx
        self._program = ctx.program(
            vertex_shader=_VERTEX,
            fragment_shader=_FRAGMENT.replace(
                "uniform sampler2D lattice;",
                f"#define NOISE_PERIOD {float(NOISE_PERIOD)}\nuniform sampler2D lattice;",
            ),
        )
        lattice = np.random.default_rng(NOISE_SEED).random((NOISE_PERIOD, NOISE_PERIOD))
        self._lattice = ctx.texture(
            (NOISE_PERIOD, NOISE_PERIOD), 1, lattice.astype("f4").tobytes(), dtype="f4"
        )
        self._lattice.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self._lattice.repeat_x = self._lattice.repeat_y = True
        self._program["lattice"].value = 0
        self._sky = ctx.program(vertex_shader=_SKY_VERTEX, fragment_shader=_SKY_FRAGMENT)
        quad = np.array([-1, -1, 3, -1, -1, 3], dtype=np.float32)
        self._sky_vao = ctx.vertex_array(self._sky, [(ctx.buffer(quad.tobytes()), "2f", "in_xy")])
        self._color = ctx.texture((width, height), 4, dtype="f1")
        self._instance = ctx.texture((width, height), 1, dtype="i4")
        self._depth = ctx.depth_texture((width, height))
        self._fbo = ctx.framebuffer([self._color, self._instance], self._depth)
        self._static_vao = None
        self._dynamic_buffer = ctx.buffer(reserve=4 * FLOATS_PER_VERTEX * 3 * 1024, dynamic=True)
        self._dynamic_vao = self._make_vao(self._dynamic_buffer)
        self._silhouette = ctx.program(
            vertex_shader=_SILHOUETTE_VERTEX, fragment_shader=_SILHOUETTE_FRAGMENT
        )
        self._silhouette_vao = ctx.vertex_array(
            self._silhouette, [(self._dynamic_buffer, "3f 40x", "in_pos")]
        )
        # The colour pass's depth is not needed once its images are read back.
        self._silhouette_fbo = ctx.framebuffer(depth_attachment=self._depth)
        self._queries: list = []

    def _make_vao(self, buffer):
        return self._ctx.vertex_array(
            self._program,
            [
                (
                    buffer,
                    "3f 3f 3f 1f 1i 2x4",
                    "in_pos",
                    "in_normal",
                    "in_color",
                    "in_material",
                    "in_instance",
                )
            ],
        )

    def set_static(self, mesh: Mesh) -> None:
        data = vertex_array(mesh, np.zeros(mesh.n_faces, np.int32))
        self._static_vao = self._make_vao(self._ctx.buffer(data.tobytes()))

    def set_lighting(self, lighting) -> None:
        p = self._program
        p["sun_dir"].value = tuple(map(float, lighting.sun_direction))
        p["sun_color"].value = tuple(map(float, lighting.sun_color))
        p["ambient"].value = tuple(map(float, lighting.ambient))
        p["sky_color"].value = tuple(map(float, lighting.sky_color))
        p["exposure"].value = float(lighting.exposure)
        p["haze"].value = float(lighting.haze)
        self._sky["sky_color"].value = tuple(map(float, lighting.sky_color))
        self._sky["exposure"].value = float(lighting.exposure)

    def render(
        self, T_world_from_optical: np.ndarray, dynamic: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """RGB (H, W, 3) uint8 and instance ids (H, W) int32, row 0 at the top."""
        import moderngl

        view = np.diag([1.0, -1.0, -1.0, 1.0]) @ np.linalg.inv(T_world_from_optical)
        view_projection = self.projection @ view
        vp_bytes = view_projection.T.astype("f4").tobytes()
        self._program["view_projection"].write(vp_bytes)
        self._silhouette["view_projection"].write(vp_bytes)
        self._program["eye"].value = tuple(map(float, T_world_from_optical[:3, 3]))
        P = self.projection
        ndc_to_eye = np.array(
            [
                [1 / P[0, 0], 0.0, P[0, 2] / P[0, 0]],
                [0.0, 1 / P[1, 1], P[1, 2] / P[1, 1]],
                [0.0, 0.0, -1.0],
            ]
        )
        world_from_eye = T_world_from_optical[:3, :3] @ np.diag([1.0, -1.0, -1.0])
        self._sky["world_from_ndc_ray"].write(
            (world_from_eye @ ndc_to_eye).T.astype("f4").tobytes()
        )
        self._lattice.use(location=0)
        fbo = self._fbo
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        self._ctx.disable(moderngl.CULL_FACE)
        self._ctx.enable(moderngl.DEPTH_TEST)
        if self._static_vao is not None:
            self._static_vao.render(moderngl.TRIANGLES)
        if len(dynamic):
            raw = dynamic.tobytes()
            if len(raw) > self._dynamic_buffer.size:
                self._dynamic_buffer.orphan(len(raw) * 2)
            self._dynamic_buffer.write(raw)
            self._dynamic_vao.render(moderngl.TRIANGLES, vertices=len(dynamic))
        # Sky last: early depth testing shades only the pixels no geometry covered.
        self._sky_vao.render(moderngl.TRIANGLES)
        rgb = np.frombuffer(fbo.read(components=3, attachment=0), np.uint8)
        ids = np.frombuffer(fbo.read(components=1, attachment=1, dtype="i4"), np.int32)
        rgb = rgb.reshape(self.height, self.width, 3)[::-1]
        ids = ids.reshape(self.height, self.width)[::-1]
        return np.ascontiguousarray(rgb), np.ascontiguousarray(ids)

    def silhouette_pixels(self, ranges: list[tuple[int, int]]) -> list[int]:
        """Pixels inside the image covered by each (first vertex, vertex count) range of the
        last ``render``'s dynamic vertices, as if nothing else were in the scene: the
        unoccluded silhouette of each actor, by the same rasteriser (coverage rule, near-plane
        clipping) that filled the instance image. Call after ``render``."""
        import moderngl

        if not ranges:
            return []
        ctx = self._ctx
        while len(self._queries) < len(ranges):
            self._queries.append(ctx.query(samples=True))
        fbo = self._silhouette_fbo
        fbo.use()
        fbo.clear(depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.depth_func = "<"
        step = 1.0 / (len(ranges) + 1)
        layer = self._silhouette["layer_depth"]
        for j, (first, count) in enumerate(ranges):
            layer.value = 1.0 - (j + 1) * step
            with self._queries[j]:
                if count:
                    self._silhouette_vao.render(moderngl.TRIANGLES, vertices=count, first=first)
        return [int(self._queries[j].samples) for j in range(len(ranges))]

    def release(self) -> None:
        self._ctx.release()
