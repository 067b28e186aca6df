-- Scheduler leader election: the process holding the scheduler advisory lock bumps the epoch when
-- it becomes leader; every assignment and requeue write checks the epoch it was elected with, so a
-- deposed leader that wakes up late writes nothing.
CREATE TABLE scheduler_leadership (
  id           int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  epoch        bigint NOT NULL,
  leader       text NOT NULL,
  elected_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO scheduler_leadership (epoch, leader) VALUES (0, '');
