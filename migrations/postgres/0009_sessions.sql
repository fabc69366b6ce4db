-- Dashboard sessions logged out, each until it would have expired: a
-- session is a signed cookie, so a logout must be remembered where every
-- process, and the next one, sees it.
CREATE TABLE taskwheel_revoked_sessions (
	id         text COLLATE "C" PRIMARY KEY,
	expires_at timestamptz NOT NULL
);

-- RevokeSession: purging the expired ones.
CREATE INDEX taskwheel_revoked_sessions_expiry ON taskwheel_revoked_sessions (expires_at);
