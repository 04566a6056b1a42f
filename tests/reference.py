"""Plain NumPy float64 loop oracles for the return estimators in `pgjax.kernels.returns`.

Written from the definitions, not from the kernels: every oracle is an explicit forward loop
over the future of each step, so it shares no recursion with the reverse scans it checks.

Conventions (time-major `[T, ...]`, any trailing batch dims):

* `next_values[t]` is V(s_{t+1}) of the true state reached by step t.
* `terminated[t]`: nothing is bootstrapped after step t (value 0).
* `truncated[t]`: bootstrap with `next_values[t]`.
* Either flag ends the episode: no sum or trace crosses from t to t + 1.
  A step with both flags set counts as terminated (termination dominates).
* The last step of the rollout bootstraps with `next_values[T - 1]`.
"""

from __future__ import annotations

import numpy as np


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _bool(*arrays):
    return [np.asarray(a, dtype=bool) for a in arrays]


def _tail_value(t, next_values, terminated):
    """Value used to bootstrap after step t when the sum stops there."""
    return np.where(terminated[t], 0.0, next_values[t])


def td_errors(rewards, values, next_values, terminated, gamma):
    """delta_t = r_t + gamma * (0 if terminated_t else V(s_{t+1})) - V(s_t)."""
    rewards, values, next_values = _f64(rewards, values, next_values)
    (terminated,) = _bool(terminated)
    out = np.zeros_like(rewards)
    for t in range(rewards.shape[0]):
        boot = np.where(terminated[t], 0.0, next_values[t])
        out[t] = rewards[t] + gamma * boot - values[t]
    return out


def n_step_returns(rewards, next_values, terminated, truncated, gamma, n):
    """G_t = sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n}), cut at episode/rollout end.

    Forward loop from t: accumulate rewards; stop at the first step j in the window that
    ends an episode (bootstrap 0 if terminated, next_values[j] if truncated) or that is
    the last step of the rollout (bootstrap next_values[T-1]), or after n rewards
    (bootstrap next_values[t+n-1] = V(s_{t+n})). Handles each batch element separately.
    """
    rewards, next_values = _f64(rewards, next_values)
    terminated, truncated = _bool(terminated, truncated)
    T = rewards.shape[0]
    batch_shape = rewards.shape[1:]
    out = np.zeros_like(rewards)
    for idx in np.ndindex(*batch_shape):
        r = rewards[(slice(None),) + idx]
        v = next_values[(slice(None),) + idx]
        te = terminated[(slice(None),) + idx]
        tr = truncated[(slice(None),) + idx]
        for t in range(T):
            g = 0.0
            disc = 1.0
            k = 0
            while True:
                j = t + k
                g += disc * r[j]
                disc *= gamma
                k += 1
                if te[j]:
                    break  # terminal: bootstrap zero
                if tr[j] or j == T - 1 or k == n:
                    g += disc * v[j]
                    break
            out[(t,) + idx] = g
    return out


def discounted_returns(rewards, terminated, truncated, gamma, next_values=None):
    """Reward-to-go summed forward to the end of the episode (or of the rollout).

    With next_values, truncated episode ends and the rollout end bootstrap; without,
    everything after them counts as zero.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if next_values is None:
        next_values = np.zeros_like(rewards)
    T = rewards.shape[0]
    return n_step_returns(rewards, next_values, terminated, truncated, gamma, n=T + 1)


def lambda_returns(rewards, next_values, terminated, truncated, gamma, lambda_):
    """Lambda-return as the weighted average of n-step returns.

    G^lambda_t = (1 - lambda) sum_{n>=1} lambda^{n-1} G^{(n)}_t, where every G^{(n)} whose
    window reaches past the episode/rollout end equals the full (truncated) return, so the
    residual weight lambda^{N-1} goes to G^{(N)} with N the number of steps to the end.
    Explicit sum over n, no recursion.
    """
    rewards, next_values = _f64(rewards, next_values)
    T = rewards.shape[0]
    # n-step returns for every n up to T (n >= steps-to-end gives the full return).
    g_n = [n_step_returns(rewards, next_values, terminated, truncated, gamma, n) for n in range(1, T + 1)]
    terminated, truncated = _bool(terminated, truncated)
    ended = np.logical_or(terminated, truncated)
    out = np.zeros_like(rewards)
    for idx in np.ndindex(*rewards.shape[1:]):
        for t in range(T):
            # N = number of rewards until the episode or rollout ends (inclusive).
            N = 1
            while t + N - 1 < T - 1 and not ended[(t + N - 1,) + idx]:
                N += 1
            total = 0.0
            for n in range(1, N):
                total += (1.0 - lambda_) * lambda_ ** (n - 1) * g_n[n - 1][(t,) + idx]
            total += lambda_ ** (N - 1) * g_n[N - 1][(t,) + idx]
            out[(t,) + idx] = total
    return out


def gae(rewards, values, next_values, terminated, truncated, gamma, lambda_):
    """A_t = sum_{k>=0} (gamma lambda)^k delta_{t+k}, summed forward until the episode or
    rollout ends (the step that ends it is included)."""
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    terminated, truncated = _bool(terminated, truncated)
    ended = np.logical_or(terminated, truncated)
    T = deltas.shape[0]
    out = np.zeros_like(deltas)
    for idx in np.ndindex(*deltas.shape[1:]):
        for t in range(T):
            total = 0.0
            weight = 1.0
            for j in range(t, T):
                total += weight * deltas[(j,) + idx]
                if ended[(j,) + idx]:
                    break
                weight *= gamma * lambda_
            out[(t,) + idx] = total
    return out


def gae_fast(rewards, values, next_values, terminated, truncated, gamma, lambda_):
    """Same forward sum as `gae`, A_t = sum_k (gamma lambda)^k delta_{t+k} up to the episode
    or rollout end, but vectorised over t and the batch: the loop runs over the offset k and
    adds the k-th term to every t whose episode is still running at t + k. For long T."""
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    terminated, truncated = _bool(terminated, truncated)
    ended = np.logical_or(terminated, truncated)
    T = deltas.shape[0]
    out = np.zeros_like(deltas)
    alive = np.ones(deltas.shape, dtype=bool)  # alive[t]: no episode end in [t, t + k)
    for k in range(T):
        n = T - k  # steps t = 0 .. n-1 have a (t + k)-th entry
        out[:n] += np.where(alive[:n], (gamma * lambda_) ** k * deltas[k:], 0.0)
        alive[:n] &= ~ended[k:]
        alive[n - 1 :] = False  # t + k + 1 would be past the rollout end
        if not alive.any():
            break
    return out


# --- whole episodes (REINFORCE): loops over each episode's steps ----------------------------------


def first_episode_mask(terminated, truncated):
    """1 for every step of each column up to and including its first episode end, else 0."""
    terminated, truncated = _bool(terminated, truncated)
    out = np.zeros(terminated.shape)
    for idx in np.ndindex(*terminated.shape[1:]):
        for t in range(terminated.shape[0]):
            out[(t,) + idx] = 1.0
            if terminated[(t,) + idx] or truncated[(t,) + idx]:
                break
    return out


def episode_lengths(mask):
    """Steps of each column's first episode, from a first-episode mask `[T, N]`."""
    return np.asarray(mask).sum(axis=0).astype(int)


def episode_weights(rewards, lengths, gamma, weighting, discount_weighting=False):
    """psi before the baseline, from the definitions: explicit sums over each episode's steps.

    total: R(tau) = sum_k gamma^k r_k at every step; reward_to_go: G_t = sum_{k>=t} gamma^(k-t) r_k,
    times gamma^t with discount_weighting. Zero after the episode.
    """
    (rewards,) = _f64(rewards)
    T, N = rewards.shape
    out = np.zeros((T, N))
    for i in range(N):
        L = lengths[i]
        total = sum(gamma**k * rewards[k, i] for k in range(L))
        for t in range(L):
            to_go = sum(gamma ** (k - t) * rewards[k, i] for k in range(t, L))
            if weighting == "total":
                out[t, i] = total
            else:
                out[t, i] = to_go * (gamma**t if discount_weighting else 1.0)
    return out


def leave_one_out_baseline(weights, lengths):
    """b_t^i: the mean of w_t^j over the other episodes j still running at t (0 if none)."""
    (weights,) = _f64(weights)
    T, N = weights.shape
    out = np.zeros((T, N))
    for i in range(N):
        for t in range(lengths[i]):
            others = [weights[t, j] for j in range(N) if j != i and t < lengths[j]]
            out[t, i] = np.mean(others) if others else 0.0
    return out


def group_baseline_weights(weights, lengths, group_size, weighting, baseline, eps=1e-8):
    """psi_t^i over every episode of i's group (columns g K .. g K + K - 1), a finished one counted
    with its weight past its end (its return for total, 0 for reward_to_go): leave_one_out:
    w_t^i minus the mean of the others' weights; group_norm: (w_t^i - mean) / (population std + eps)
    over the group, i included. 0 after episode i."""
    (weights,) = _f64(weights)
    T, N = weights.shape

    def counted(t, j):
        if t < lengths[j]:
            return weights[t, j]
        return weights[0, j] if weighting == "total" else 0.0

    out = np.zeros((T, N))
    for i in range(N):
        first = (i // group_size) * group_size
        for t in range(lengths[i]):
            group = [counted(t, j) for j in range(first, first + group_size)]
            own = counted(t, i)
            if baseline == "leave_one_out":
                others = [counted(t, j) for j in range(first, first + group_size) if j != i]
                out[t, i] = own - sum(others) / len(others)
            else:
                mean = sum(group) / len(group)
                std = np.sqrt(sum((w - mean) ** 2 for w in group) / len(group))
                out[t, i] = (own - mean) / (std + eps)
    return out


def value_baseline(values, lengths, gamma, discount_weighting=False):
    """b_t^i = V(s_t^i) (times gamma^t with discount_weighting) on the episode's steps, else 0."""
    (values,) = _f64(values)
    out = np.zeros_like(values)
    for i in range(values.shape[1]):
        for t in range(lengths[i]):
            out[t, i] = values[t, i] * (gamma**t if discount_weighting else 1.0)
    return out


def episode_policy_loss(log_probs, psi, lengths):
    """-(1/N) sum over episodes of sum over that episode's steps of log pi psi."""
    log_probs, psi = _f64(log_probs, psi)
    N = log_probs.shape[1]
    return -sum(log_probs[t, i] * psi[t, i] for i in range(N) for t in range(lengths[i])) / N


# --- trust-region surrogates ---------------------------------------------------------------------


def importance_surrogate(log_probs, old_log_probs, advantages):
    """mean_i pi(a_i|s_i) / pi_old(a_i|s_i) A_i, one sample at a time."""
    log_probs, old_log_probs, advantages = _f64(log_probs, old_log_probs, advantages)
    n = len(log_probs)
    return sum(np.exp(log_probs[i]) / np.exp(old_log_probs[i]) * advantages[i] for i in range(n)) / n


def kl_penalty_loss(log_probs, old_log_probs, advantages, kls, kl_coef, max_kl):
    """-(L - lambda (mean KL - delta)), the Lagrangian's negative."""
    mean_kl = sum(np.float64(k) for k in kls) / len(kls)
    return -(importance_surrogate(log_probs, old_log_probs, advantages) - kl_coef * (mean_kl - max_kl))


def spo_loss(log_probs, old_log_probs, advantages, eps):
    """-(1/N) sum_i [r_i A_i - |A_i| / (2 eps) (r_i - 1)^2], r_i = pi / pi_old, one sample at a time."""
    log_probs, old_log_probs, advantages = _f64(log_probs, old_log_probs, advantages)
    n = len(log_probs)
    total = 0.0
    for i in range(n):
        r = np.exp(log_probs[i]) / np.exp(old_log_probs[i])
        total += r * advantages[i] - abs(advantages[i]) / (2 * eps) * (r - 1) ** 2
    return -total / n


def ratio_deviation(log_ratios, eps):
    """The share of ratios r with |r - 1| > eps, the mean of the excess max(|r - 1| - eps, 0),
    and the largest |r - 1|, counted one sample at a time."""
    outside, excess, largest = 0, 0.0, 0.0
    for log_ratio in np.asarray(log_ratios, np.float64).ravel():
        deviation = abs(np.exp(log_ratio) - 1)
        outside += deviation > eps
        excess += max(deviation - eps, 0.0)
        largest = max(largest, deviation)
    n = np.asarray(log_ratios).size
    return {"ratio_outside_frac": outside / n, "ratio_excess_mean": excess / n, "ratio_deviation_max": largest}


# --- phasic policy gradient ------------------------------------------------------------------------


def categorical_kl_rows(logits_p, logits_q):
    """KL(p || q) of each row's softmax, sum_a p(a) log(p(a) / q(a)), one row and action at a time."""
    logits_p, logits_q = _f64(logits_p, logits_q)
    out = []
    for lp, lq in zip(logits_p, logits_q):
        p, q = np.exp(lp - lp.max()), np.exp(lq - lq.max())
        p, q = p / p.sum(), q / q.sum()
        out.append(sum(p[a] * np.log(p[a] / q[a]) for a in range(len(p)) if p[a] > 0))
    return np.array(out)


def diag_gaussian_kl_rows(mean_p, log_std_p, mean_q, log_std_q):
    """KL(p || q) of diagonal Gaussians per row: the sum over dimensions of the univariate
    KL log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2, one dimension at a time."""
    mean_p, log_std_p, mean_q, log_std_q = _f64(mean_p, log_std_p, mean_q, log_std_q)
    out = []
    for mp, lp, mq, lq in zip(mean_p, log_std_p, mean_q, log_std_q):
        sp, sq = np.exp(lp), np.exp(lq)
        out.append(sum(np.log(sq[d] / sp[d]) + (sp[d] ** 2 + (mp[d] - mq[d]) ** 2) / (2 * sq[d] ** 2) - 0.5
                       for d in range(len(mp))))
    return np.array(out)


def ppg_joint_loss(aux_values, targets, kls, beta_clone):
    """(L_joint, L_aux, mean KL): L_aux = 1/2 mean (V_aux - V_targ)^2 and L_joint = L_aux +
    beta_clone mean KL(pi_old || pi), summed one state at a time."""
    aux_values, targets, kls = _f64(aux_values, targets, kls)
    n = len(targets)
    aux = sum(0.5 * (aux_values[i] - targets[i]) ** 2 for i in range(n)) / n
    kl = sum(kls[i] for i in range(n)) / n
    return aux + beta_clone * kl, aux, kl


# --- V-MPO (Song et al., 2019) ------------------------------------------------------------------


def vmpo_top_half(advantages):
    """Mask of the top half: sort the flattened advantages (largest first, stable), take the
    k = ceil(N/2)-th as the threshold, keep every advantage >= it (ties at it all kept)."""
    flat = [float(a) for a in np.asarray(advantages, np.float64).reshape(-1)]
    k = (len(flat) + 1) // 2
    threshold = sorted(flat, reverse=True)[k - 1]
    mask = np.array([1.0 if a >= threshold else 0.0 for a in flat]).reshape(np.shape(advantages))
    return mask, threshold


def vmpo_temperature(advantages, mask, eta, eps_eta):
    """(L_eta, psi, KL(psi || uniform)) summed over the selected samples one at a time:
    L_eta = eta eps + eta log((1/n) sum exp(A/eta)), psi = exp(A/eta) / sum exp(A/eta)."""
    flat_a, flat_m = np.asarray(advantages, np.float64).reshape(-1), np.reshape(mask, -1)
    chosen = [i for i in range(len(flat_a)) if flat_m[i] > 0]
    n = len(chosen)
    total = sum(np.exp(flat_a[i] / eta) for i in chosen)
    loss = eta * eps_eta + eta * np.log(total / n)
    psi = np.zeros(len(flat_a))
    for i in chosen:
        psi[i] = np.exp(flat_a[i] / eta) / total
    kl = sum(psi[i] * np.log(psi[i] * n) for i in chosen)
    return loss, psi.reshape(np.shape(advantages)), kl


def vmpo_policy_loss(log_probs, weights):
    """-sum_i psi_i log pi(a_i|s_i)."""
    log_probs, weights = _f64(np.reshape(log_probs, -1), np.reshape(weights, -1))
    return -sum(weights[i] * log_probs[i] for i in range(len(weights)))


def vmpo_alpha_loss(kls, alphas, epsilons):
    """sum_k mean_i [alpha_k (eps_k - KL_ik) + alpha_k KL_ik] (the value; the stop-gradients
    only shape the derivatives), with the mean KL per constraint. kls [N, K]."""
    kls = np.asarray(kls, np.float64).reshape(-1, len(alphas))
    n = kls.shape[0]
    mean_kls = [sum(kls[i, k] for i in range(n)) / n for k in range(len(alphas))]
    return sum(alphas[k] * (epsilons[k] - mean_kls[k]) + alphas[k] * mean_kls[k] for k in range(len(alphas))), mean_kls


def decoupled_gaussian_kl(mean_old, std_old, mean, std):
    """KL_mu = sum_d (mu - mu_old)^2 / (2 s_old^2); KL_sigma = sum_d [log(s / s_old) + s_old^2 / (2 s^2) - 1/2],
    one dimension at a time (last axis), from standard deviations (not log-stds)."""
    mean_old, std_old, mean, std = _f64(mean_old, std_old, mean, std)
    kl_mu, kl_sigma = np.zeros(mean.shape[:-1]), np.zeros(mean.shape[:-1])
    for idx in np.ndindex(*mean.shape[:-1]):
        for d in range(mean.shape[-1]):
            so, s, dm = std_old[idx + (d,)], std[idx + (d,)], mean[idx + (d,)] - mean_old[idx + (d,)]
            kl_mu[idx] += dm**2 / (2 * so**2)
            kl_sigma[idx] += np.log(s / so) + so**2 / (2 * s**2) - 0.5
    return kl_mu, kl_sigma


# --- reward scaling ------------------------------------------------------------------------------


def reward_scaling(rewards, terminated, truncated, gamma, returns0, mean0, var0, count0, mask=None,
                   clip=10.0, eps=1e-8):
    """SB3 VecNormalize's reward path, one step and one environment at a time in float64:
    G = gamma G + r; moments updated with the step's returns (masked ones left out; Chan's
    merge as RunningMeanStd.update); r / sqrt(var + eps) clipped; G = 0 after an episode end.
    Returns (scaled [T, B], returns [B], mean, var, count)."""
    rewards = np.asarray(rewards, np.float64)
    T, B = rewards.shape
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, np.float64)
    G = np.array(returns0, np.float64)
    mean, var, count = float(mean0), float(var0), float(count0)
    out = np.zeros((T, B))
    for t in range(T):
        for b in range(B):
            G[b] = gamma * G[b] + rewards[t, b]
        batch = [G[b] for b in range(B) if mask[t, b]]
        if batch:
            n = len(batch)
            batch_mean = sum(batch) / n
            batch_var = sum((g - batch_mean) ** 2 for g in batch) / n
            total = count + n
            delta = batch_mean - mean
            m2 = var * count + batch_var * n + delta**2 * count * n / total
            mean, var, count = mean + delta * n / total, m2 / total, total
        for b in range(B):
            out[t, b] = min(max(rewards[t, b] / np.sqrt(var + eps), -clip), clip)
            if terminated[t, b] or truncated[t, b]:
                G[b] = 0.0
    return out, G, mean, var, count
