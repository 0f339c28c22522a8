"""Growth curves and the batched solver that fits them.

The Wang-Song-Barabasi (WSB) citation model, as adapted to Hugging Face derivatives by
Bhandari, Chen & Gao (2025), is

    c(t) = m * (exp(lambda * Phi((ln t - mu) / sigma)) - 1)

with ``t`` in months since the base model's release, ``Phi`` the standard normal CDF,
``lambda`` fitness, ``mu`` immediacy and ``sigma`` longevity.  The optimiser works in the
identifiable parametrisation ``theta = (log c_inf, mu, log sigma)`` where
``c_inf = m * (exp(lambda) - 1)`` is the asymptotic number of derivatives; with m fixed (the
paper's m = 100) this is a bijection with (lambda, mu, sigma).

Evaluators map theta (n, p) and t (1, T) to (f, J) in "loss space" (raw or log1p counts);
:func:`batched_lm` fits a batch of independent problems at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import ndtr

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def wsb_curve(t, lam, mu, sigma, m: float = 100.0):
    """c(t) = m (exp(lam Phi((ln t - mu)/sigma)) - 1); broadcasts over inputs."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        z = (np.log(t) - mu) / sigma
    return m * np.expm1(lam * ndtr(z))


def wsb_lambda(c_inf, m: float = 100.0):
    """Paper fitness lambda for a given asymptote c_inf (m fixed)."""
    return np.log1p(np.asarray(c_inf, dtype=float) / m)


# ---- model evaluators: theta (n,p), t (1,T) -> (f, J) in "loss space" -------
def _wsb_eval(theta, t, jac, log, m):
    a, mu, s = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    cinf = np.exp(a)
    lam = np.log1p(cinf / m)
    sig = np.exp(s)
    with np.errstate(divide="ignore"):
        z = (np.log(t) - mu) / sig
    Phi = ndtr(z)
    em1 = np.expm1(lam * Phi)
    c = m * em1
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    J = np.empty((theta.shape[0], 3, f.shape[1]))
    mE = m * (em1 + 1.0)
    if log:
        mE /= 1.0 + c
    k = np.exp(-0.5 * z * z)
    k *= mE
    k *= lam / _SQRT_2PI
    np.multiply(mE * Phi, cinf / (m + cinf), out=J[:, 0])
    np.divide(k, sig, out=J[:, 1])
    J[:, 1] *= -1.0
    np.multiply(k, z, out=J[:, 2])
    J[:, 2] *= -1.0
    return f, J


def _logistic_eval(theta, t, jac, log):
    K, r, t0 = np.exp(theta[:, 0:1]), np.exp(theta[:, 1:2]), theta[:, 2:3]
    x = np.clip(r * (t - t0), -700, 700)
    g = 1.0 / (1.0 + np.exp(-x))
    c = K * g
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    gg = K * g * (1 - g)
    J = np.stack([c, gg * x, -gg * r], axis=1)
    if log:
        J /= (1.0 + c)[:, None, :]
    return f, J


def _bass_eval(theta, t, jac, log):
    M, p, q = np.exp(theta[:, 0:1]), np.exp(theta[:, 1:2]), np.exp(theta[:, 2:3])
    u = p + q
    r = q / p
    E = np.exp(-u * t)
    den = 1.0 + r * E
    F = (1.0 - E) / den
    c = M * F
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    dF_dE = -(1.0 + r) / den**2
    dF_dr = -(1.0 - E) * E / den**2
    dE_du = -t * E
    J = np.stack(
        [c, M * (dF_dE * dE_du * p - dF_dr * r), M * (dF_dE * dE_du * q + dF_dr * r)], axis=1
    )
    if log:
        J /= (1.0 + c)[:, None, :]
    return f, J


def batched_lm(
    model: Callable,
    theta0: np.ndarray,
    t: np.ndarray,
    Y: np.ndarray,
    lo,
    hi,
    *,
    max_iter: int = 200,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 1e-12,
    damping0: float = 1e-3,
):
    """Projected Levenberg-Marquardt over a batch of independent problems.

    model(theta (k,p), t (1,T), jac: bool) -> (f (k,T), J (k,p,T) or None).
    Y (n,T) are targets in the same space as f (NaN = missing, masked).
    lo/hi: (p,) or (n,p) box bounds.  A parameter on a bound whose gradient
    points outwards is frozen for that step (active set); steps are clipped
    to the box.  Marquardt damping (scaled by diag(J'J)), one model
    evaluation (value + Jacobian) per iteration, converged series leave the
    active set.

    Returns dict(theta, cost, converged, n_iter, J (n,p,T) at the solution).
    """
    theta = np.clip(np.array(theta0, dtype=float), lo, hi)
    n, p = theta.shape
    lo = np.broadcast_to(np.asarray(lo, float), (n, p))
    hi = np.broadcast_to(np.asarray(hi, float), (n, p))
    t = np.asarray(t, float).reshape(1, -1)
    Wf = np.isfinite(Y).astype(float)
    Y0 = np.where(Wf > 0, Y, 0.0)

    def evaluate(th, rows):
        f, J = model(th, t, True)
        w = Wf[rows]
        r = (f - Y0[rows]) * w
        J *= w[:, None, :]
        with np.errstate(invalid="ignore", over="ignore"):
            c = 0.5 * np.einsum("nt,nt->n", r, r)
        fin = np.isfinite(c) & np.isfinite(J).all(axis=(1, 2))
        return r, J, np.where(fin, c, np.inf)

    r, J, cost = evaluate(theta, np.arange(n))
    # absolute cost tolerance: a (numerically) perfect fit is converged
    atol = 1e-12 * (1.0 + 0.5 * np.einsum("nt,nt->n", Y0, Y0))
    lam = np.full(n, damping0)
    done = ~np.isfinite(cost)
    converged = np.zeros(n, bool)
    n_iter = np.zeros(n, int)
    eye = np.eye(p)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Ja, ra, th = J[act], r[act], theta[act]
        A = np.matmul(Ja, Ja.transpose(0, 2, 1))
        g = np.matmul(Ja, ra[:, :, None])[:, :, 0]
        frozen = ((th <= lo[act]) & (g > 0)) | ((th >= hi[act]) & (g < 0))
        keep = ~frozen
        A = A * keep[:, :, None] * keep[:, None, :] + eye * frozen[:, :, None]
        g = g * keep
        dA = np.maximum(np.diagonal(A, axis1=1, axis2=2), 1e-12)
        Ad = A + (lam[act, None] * dA)[:, :, None] * eye
        try:
            step = -np.linalg.solve(Ad, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("npq,nq->np", np.linalg.pinv(Ad), g)
        step *= keep
        th_new = np.clip(th + step, lo[act], hi[act])
        r_new, J_new, c_new = evaluate(th_new, act)
        c_old = cost[act]
        acc = c_new < c_old
        dth = np.abs(th_new - th).max(axis=1)
        small_step = dth <= xtol * (np.abs(th).max(axis=1) + xtol)
        rel = np.where(acc, (c_old - c_new) / np.maximum(c_old, 1e-300), 0.0)
        gnorm = np.abs(g).max(axis=1)
        conv = (acc & (rel <= ftol)) | small_step | (gnorm <= gtol) | (c_old <= atol[act])
        ia = act[acc]
        theta[ia], cost[ia], r[ia], J[ia] = th_new[acc], c_new[acc], r_new[acc], J_new[acc]
        lam[act] = np.where(acc, np.maximum(lam[act] / 3.0, 1e-15), lam[act] * 4.0)
        n_iter[act] += 1
        stop = conv | (lam[act] > 1e16)
        converged[act[stop]] = True
        done[act[stop]] = True
    return dict(theta=theta, cost=cost, converged=converged, n_iter=n_iter, J=J)
