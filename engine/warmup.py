"""Compile every numba kernel once (numba caches them on disk with ``cache=True``), so the first
visitor of a freshly started server — or a freshly built container — does not wait for LLVM."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def compile_all() -> bool:
    """Run a tiny instance of each public computation (idempotent, cheap after the first call)."""
    from . import escape, fa, linreg, overfit, pullback, saddle, stability

    th = fa.uniform_initial(600, 1.0, 0)  # ≥ 2 blocks: the parallel kernels too
    for kw in ({}, {"shared_noise": True}, {"n_data": 8, "batch_size": 3}, {"label_noise": 0.1}):
        fa.run_ensemble(th, 0.1, 1.0, 3, **kw)
        fa.run_ensemble(th[:5], 0.1, 1.0, 3, **kw)
    stability.attracting_map(1.0, lr=0.1, n=10, lyapunov_steps=10, moments=True)
    stability.attracting_probability(0.5, 0.5, 1.0)
    stability.lyapunov(0.5, 0.5, 1.0, 0.1, n_steps=10, n_replicas=2)
    pullback.pullback_cloud(1.0, 3, n_points=600)
    fa.batch_indices(10, 3, 2)
    for kw in ({}, {"n_data": 5}, {"n_data": 5, "batch_size": 2, "n_batches": 10}):
        saddle.lyapunov_exponents([0.1, 1.0], [0.2, 0.5], **kw)
    escape.escape_times(0.1, n_trajectories=300, max_steps=5)
    linreg.first_passage_times([1.1, 1.2], n_data=50, n_runs=2, max_steps=5)
    linreg.stationary_exponent(n_data=50, n_chains=2, n_samples=3, sample_every=2, burn_in=1)
    x, y = overfit.make_dataset(12, 0.2)
    for B in (None, 4):
        overfit.train(x, y, overfit.RELEASED_THETA0, 0.02, 5, batch_size=B)
    return True


if __name__ == "__main__":
    compile_all()
