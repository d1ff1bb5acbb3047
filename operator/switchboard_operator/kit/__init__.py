"""Controller plumbing, each piece written and tested once: the informer, the work queue,
retries, periodic jobs, waiters and leader election. Nothing here knows Switchboard."""
