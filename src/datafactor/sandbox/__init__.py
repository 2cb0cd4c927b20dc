"""The sandbox (隐私计算沙箱): "usable but not visible" computation (原始数据不出域、数据可用不可见).

A grantee with a sandbox grant — a policy grant (授权) or an exchange contract whose delivery
channel is the sandbox — writes SQL against the data sets the grant covers and gets only what the
policy allows: aggregates over groups of at least k privacy units, with differential-privacy
noise and a privacy budget where the policy asks for it. See docs/sandbox.md.

Modules, bottom up: ``errors`` and ``rulebook`` (rules/sandbox.yaml), ``domain`` (column roles,
table specs, the checked query's plan — pure), ``checker`` (sqlglot: refuse what may not run,
rewrite what may into the bounded staged query), ``dp`` (OpenDP mechanisms, costs), ``worker``
(the separate, limited process that runs a staged query on DuckDB or Spark), ``models``,
``services`` (grants, profiles, budgets, queries, review; audit and ledger), then the entry
points ``api``, ``views`` and ``cli``.
"""
