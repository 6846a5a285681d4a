"""PCA reference for netlens's `explain::visualize::pca`: numpy's SVD on seeded data, with
sklearn's sign rule (each projection's largest-|.| entry positive). Two shapes: more rows
than features (covariance path) and more features than rows (Gram path).

    python tools/pca_reference.py   # writes tests/fixtures/pca.safetensors
"""
import numpy as np
from safetensors.numpy import save_file


def pca(x, k):
    xc = x - x.mean(0)
    u, s, vt = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    proj = u[:, :k] * s[:k]
    comps = vt[:k]
    for c in range(k):
        big = proj[np.argmax(np.abs(proj[:, c])), c]
        if big < 0:
            proj[:, c] *= -1
            comps[c] *= -1
    return proj, comps, s[:k] ** 2 / (len(x) - 1)


rng = np.random.default_rng(11)
out = {}
for name, (n, d) in {"tall": (60, 9), "wide": (12, 40)}.items():
    # anisotropic data so the leading eigenvalues are well separated
    x = rng.normal(size=(n, d)) * np.linspace(3.0, 0.2, d) + rng.normal(size=d)
    x = x.astype(np.float32)
    proj, comps, var = pca(x, 3)
    out[f"{name}.x"] = x
    out[f"{name}.projected"] = proj.astype(np.float32)
    out[f"{name}.components"] = comps.astype(np.float32)
    out[f"{name}.variance"] = var.astype(np.float32)
save_file(out, "tests/fixtures/pca.safetensors")
print({k: v.shape for k, v in out.items()})
