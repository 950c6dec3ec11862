"""Reference side of the unsupervised benchmarks (make bench): numpy and sklearn on the same
data as bench/unsup_bench.c, in the same run. Prints "<key> <value>" lines.
  pca OUTDIR N     eigenvalues of the 1/n covariance of the first N Fashion-MNIST training
                   images (numpy, float64) against OUTDIR/eigvals.f64
  tsne OUTDIR ITER sklearn TSNE on OUTDIR/x50.f32 (same perplexity, iterations, PCA init);
                   the exact KL(P||Q) of both embeddings under sklearn's own P"""
import gzip
import sys
import time

import numpy as np


def load_images(path, n):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count = int.from_bytes(raw[4:8], "big")
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(count, 784)[:n]
    return x.astype(np.float32) / np.float32(255)


def pca(outdir, n):
    x = load_images("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", n)
    t0 = time.time()
    xc = x.astype(np.float64)
    xc -= xc.mean(0)
    cov = xc.T @ xc / len(xc)
    w = np.linalg.eigvalsh(cov)[::-1]
    t = time.time() - t0
    ours = np.fromfile(outdir + "/eigvals.f64", dtype="<f8")
    rel = np.abs(ours - w) / np.abs(w).clip(1e-300)
    big = w >= 1e-6 * w[0]
    print("numpy_seconds %.3f" % t)
    print("eig_largest %.9g %.9g" % (ours[0], w[0]))
    print("eig_max_rel_err_above_1e-6 %.3g" % rel[big].max())
    print("eig_count_above_1e-6 %d" % big.sum())
    print("eig_max_abs_err_over_largest %.3g" % (np.abs(ours - w).max() / w[0]))
    print("eig_within_1e-4 %d of %d" % ((rel <= 1e-4).sum(), len(w)))


def exact_kl(P, y):
    """KL(P || Q) with Q the Student-t affinities of y over all pairs (dense)."""
    d2 = (y * y).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * y @ y.T
    q = 1.0 / (1.0 + np.maximum(d2, 0))
    np.fill_diagonal(q, 0)
    z = q.sum()
    P = P.tocoo()
    p = P.data
    qij = q[P.row, P.col] / z
    return float((p * np.log(np.maximum(p, 1e-300) / qij)).sum())


def tsne(outdir, iters):
    from sklearn.manifold import TSNE
    from sklearn.manifold._t_sne import _joint_probabilities_nn
    from sklearn.neighbors import NearestNeighbors

    x = np.fromfile(outdir + "/x50.f32", dtype="<f4").reshape(-1, 50)
    n = len(x)
    kw = dict(perplexity=30.0, init="pca", learning_rate="auto", method="barnes_hut",
              angle=0.5, random_state=0)
    try:
        t = TSNE(n_iter=iters, **kw)
    except TypeError:
        t = TSNE(max_iter=iters, **kw)
    t0 = time.time()
    ys = t.fit_transform(x).astype(np.float64)
    secs = time.time() - t0
    k = min(n - 1, int(3 * 30.0 + 1))
    nn = NearestNeighbors(n_neighbors=k).fit(x)
    D = nn.kneighbors_graph(mode="distance")
    D.data **= 2
    P = _joint_probabilities_nn(D, 30.0, 0)
    ours = np.fromfile(outdir + "/y.f32", dtype="<f4").reshape(n, 2).astype(np.float64)
    print("sklearn_seconds %.3f" % secs)
    print("sklearn_kl_reported %.6f" % t.kl_divergence_)
    print("sklearn_kl_exact %.6f" % exact_kl(P, ys))
    print("nerve_kl_exact %.6f" % exact_kl(P, ours))


if __name__ == "__main__":
    if sys.argv[1] == "pca":
        pca(sys.argv[2], int(sys.argv[3]))
    else:
        tsne(sys.argv[2], int(sys.argv[3]))
