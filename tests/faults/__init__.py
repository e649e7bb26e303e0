"""The standing fault suite: the daemon as deployed (`synthmon run`) against every fault
a target, a journey or the machine can throw at it.

Rows and where they are tested:

- network faults of a target (accept-and-hang, slow status line, slow body, reset
  mid-body, truncated body, 500, bad TLS, refused, unresolvable name, huge body):
  test_matrix.py, against faultserver.py
- journey bugs (raise, block, spin, leak): test_journey_bugs.py
- bad schedules: test_schedules.py
- disk full, hostile connections, API limits, read auth: test_disk.py,
  test_connections.py, test_api_limits.py, test_read_auth.py
- browser SIGKILL: tests/browser/test_runner.py
  (TestCrashRecovery.test_killed_chromium_is_browser_crash_and_next_run_passes)
- Alertmanager down, daemon SIGKILL mid-incident: tests/alerting/test_alertmanager.py
  (TestAlertmanagerPath.test_alertmanager_down_then_up_loses_nothing,
  TestRestart.test_killed_daemon_does_not_repage_and_still_resolves)
"""
