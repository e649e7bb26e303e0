"""Browser journeys: the runner, the Chromium pool, the per-run page context, error
classification and failure artifacts. Imported only when a browser journey exists or
the daemon is asked for one, so HTTP-only deployments never load Playwright."""
