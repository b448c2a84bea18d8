"""The state file's schema as numbered migrations, recorded in ``PRAGMA user_version``: an older
state file is upgraded in place, a newer one is refused rather than misread."""

from __future__ import annotations

#: (version, what it does, SQL). Append only: never edit a shipped migration.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "watermarks, findings with their lifecycle, run log",
        """
        CREATE TABLE cursors (
            connector TEXT PRIMARY KEY,
            watermark TEXT,
            updated_at TEXT,
            last_full_as_of TEXT,
            last_full_at TEXT
        );
        CREATE TABLE findings (
            connector TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            record_type TEXT NOT NULL,
            record_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT,
            owner_id TEXT,
            owner_name TEXT,
            partner_id TEXT,
            partner_name TEXT,
            status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            resolved_at TEXT,
            reopened INTEGER NOT NULL DEFAULT 0,
            last_run INTEGER NOT NULL,
            task_id TEXT,
            task_status TEXT,
            repair_status TEXT,
            repair_at TEXT,
            repair_changes TEXT,
            PRIMARY KEY (connector, fingerprint)
        );
        CREATE INDEX findings_by_record ON findings (connector, record_type, record_id);
        CREATE INDEX findings_by_status ON findings (connector, status, last_run);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            connector TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            as_of TEXT NOT NULL,
            mode TEXT NOT NULL,
            full INTEGER NOT NULL,
            dry_run INTEGER NOT NULL,
            watermark_from TEXT,
            watermark_to TEXT,
            outcome TEXT NOT NULL DEFAULT 'running',
            exit_code INTEGER,
            counts TEXT,
            error TEXT
        );
        """,
    ),
    (
        2,
        "action log and close-date pushes for the report",
        """
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL,
            connector TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            crm_id TEXT,
            error TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX actions_by_run ON actions (run_id);
        CREATE TABLE close_date_pushes (
            connector TEXT NOT NULL,
            opportunity_id TEXT NOT NULL,
            changed_on TEXT NOT NULL,
            locked INTEGER NOT NULL,
            approved INTEGER NOT NULL
        );
        CREATE INDEX pushes_by_opportunity ON close_date_pushes (connector, opportunity_id);
        """,
    ),
    (
        3,
        "remember the configuration a watermark was read with",
        """
        ALTER TABLE cursors ADD COLUMN config_digest TEXT;
        """,
    ),
    (
        4,
        "write-ahead journal of the CRM writes a run is about to make",
        """
        CREATE TABLE pending_writes (
            connector TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            kind TEXT NOT NULL,
            record_type TEXT NOT NULL,
            record_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            owner_id TEXT,
            run_id INTEGER NOT NULL,
            planned_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (connector, fingerprint, kind)
        );
        """,
    ),
    (
        5,
        "unfinished writes: what the CRM refused, why, and the write itself to send again",
        """
        ALTER TABLE pending_writes ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE pending_writes ADD COLUMN last_error TEXT;
        ALTER TABLE pending_writes ADD COLUMN action TEXT;
        """,
    ),
    (
        6,
        "the admin's worklist: record, account and link on each finding, shadow findings, "
        "rule texts, exemptions with expiry, and indexes for filtered worklist queries",
        """
        ALTER TABLE findings ADD COLUMN record_name TEXT;
        ALTER TABLE findings ADD COLUMN account_id TEXT;
        ALTER TABLE findings ADD COLUMN account_name TEXT;
        ALTER TABLE findings ADD COLUMN record_url TEXT;
        ALTER TABLE findings ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX findings_worklist ON findings (connector, status, severity, first_seen);
        CREATE INDEX findings_worklist_by_rank ON findings (
            connector, status, shadow,
            (CASE severity WHEN 'block' THEN 0 WHEN 'warn' THEN 1 ELSE 2 END), first_seen
        );
        CREATE INDEX findings_by_rule ON findings (connector, rule, status);
        CREATE INDEX findings_by_owner_name ON findings (connector, owner_name COLLATE NOCASE);
        CREATE INDEX findings_by_owner_id ON findings (connector, owner_id);
        CREATE INDEX findings_by_partner_name ON findings (connector, partner_name COLLATE NOCASE);
        CREATE INDEX findings_by_partner_id ON findings (connector, partner_id);
        CREATE INDEX findings_by_account_name ON findings (connector, account_name COLLATE NOCASE);
        CREATE INDEX findings_by_account_id ON findings (connector, account_id);
        CREATE TABLE rule_texts (
            connector TEXT NOT NULL,
            rule TEXT NOT NULL,
            title TEXT NOT NULL,
            doctrine TEXT NOT NULL,
            remediation TEXT NOT NULL,
            PRIMARY KEY (connector, rule)
        );
        CREATE TABLE exemptions (
            id INTEGER PRIMARY KEY,
            connector TEXT NOT NULL,
            fingerprint TEXT,
            rule TEXT NOT NULL,
            record_type TEXT NOT NULL,
            record_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            approver TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires TEXT NOT NULL,
            revoked_at TEXT,
            revoked_by TEXT,
            settled INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX exemptions_by_connector ON exemptions (connector, revoked_at, expires);
        """,
    ),
    (
        7,
        "history per owner: each run's new, resolved and open findings per owner",
        """
        CREATE TABLE run_owner_counts (
            run_id INTEGER NOT NULL,
            connector TEXT NOT NULL,
            owner_id TEXT NOT NULL,
            owner_name TEXT,
            new INTEGER NOT NULL DEFAULT 0,
            resolved INTEGER NOT NULL DEFAULT 0,
            open INTEGER NOT NULL DEFAULT 0,
            open_block INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, owner_id)
        );
        CREATE INDEX runs_by_start ON runs (connector, started_at);
        CREATE INDEX findings_resolved_at ON findings (connector, status, resolved_at);
        CREATE INDEX findings_open_by_owner ON findings (
            connector, status, shadow, owner_id, severity, owner_name
        );
        """,
    ),
    (
        8,
        "exemptions from every source (state, config, crm) and for every record of an account "
        "or a partner",
        """
        ALTER TABLE exemptions ADD COLUMN source TEXT NOT NULL DEFAULT 'state';
        ALTER TABLE exemptions ADD COLUMN account_id TEXT;
        ALTER TABLE exemptions ADD COLUMN partner_id TEXT;
        ALTER TABLE exemptions ADD COLUMN source_key TEXT;
        CREATE INDEX exemptions_by_source ON exemptions (connector, source, revoked_at);
        """,
    ),
    (
        9,
        "the packs' aggregates: each record's share of an org-wide total, kept up to date by "
        "incremental runs, and which aggregates (names, parameters) the shares were read for",
        """
        CREATE TABLE aggregate_shares (
            connector TEXT NOT NULL,
            aggregate TEXT NOT NULL,
            record_type TEXT NOT NULL,
            record_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (connector, aggregate, record_type, record_id)
        ) WITHOUT ROWID;
        CREATE INDEX aggregate_shares_by_key ON aggregate_shares (connector, aggregate, key);
        CREATE TABLE aggregate_sets (
            connector TEXT PRIMARY KEY,
            digest TEXT NOT NULL
        );
        """,
    ),
    (
        10,
        "the run summary's counts kept up to date as findings and close-date pushes change "
        "(open findings by rule, severity, owner and partner; pushes by month), so a run's "
        "final counts read a few rows per owner and partner, not every open finding and push",
        # A NULL owner id or name is kept apart from an empty one by a flag, so each count the
        # state answered from the findings table comes out the same from the tallies. The
        # state's writes keep them (tallies.py): a trigger would cost every upsert a statement
        # journal, twice its time.
        """
        CREATE TABLE open_tallies (
            connector TEXT NOT NULL,
            shadow INTEGER NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            owner_id TEXT NOT NULL,
            owner_none INTEGER NOT NULL,
            owner_name TEXT NOT NULL,
            owner_named INTEGER NOT NULL,
            partner_id TEXT NOT NULL,
            partner_label TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (connector, shadow, rule, severity, owner_id, owner_none, owner_name,
                owner_named, partner_id, partner_label)
        ) WITHOUT ROWID;
        INSERT INTO open_tallies
            SELECT connector, shadow, rule, severity, coalesce(owner_id, ''), owner_id IS NULL,
                coalesce(owner_name, ''), owner_name IS NOT NULL, coalesce(partner_id, ''),
                coalesce(partner_name, partner_id, ''), count(*)
            FROM findings WHERE status = 'open' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
        CREATE TABLE push_months (
            connector TEXT NOT NULL,
            month TEXT NOT NULL,
            n INTEGER NOT NULL,
            bad INTEGER NOT NULL,
            PRIMARY KEY (connector, month)
        ) WITHOUT ROWID;
        INSERT INTO push_months
            SELECT connector, substr(changed_on, 1, 7), count(*),
                coalesce(sum(locked AND NOT approved), 0)
            FROM close_date_pushes GROUP BY 1, 2;
        """,
    ),
    (
        11,
        "the findings indexes a first full run builds after its writes instead of during them "
        "(each one's definition kept here until it is built again)",
        """
        CREATE TABLE deferred_indexes (
            name TEXT PRIMARY KEY,
            sql TEXT NOT NULL
        );
        """,
    ),
    (
        12,
        "for each key of a pack's total, the lowest total at which one of its readers without "
        "a finding would get one (a rise that stays below it judges only the readers holding one)",
        """
        CREATE TABLE aggregate_bounds (
            connector TEXT NOT NULL,
            aggregate TEXT NOT NULL,
            key TEXT NOT NULL,
            bound REAL NOT NULL,
            PRIMARY KEY (connector, aggregate, key)
        ) WITHOUT ROWID;
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
