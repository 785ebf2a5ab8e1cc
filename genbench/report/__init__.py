"""The report stage: the results tables (``tables``), metric-vs-probe correlations
(``correlations``), figures (``plots``) and the findings with the config's targets
(``findings``)."""
