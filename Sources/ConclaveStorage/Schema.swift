import ConclaveProtocol
import Foundation

/// The database schema, as numbered migrations. Each runs once, in its own
/// transaction with the bump of `schema_version` (STYLE.md: storage is
/// versioned and atomic). Types are spelled per dialect; everything else
/// is the same SQL on SQLite and PostgreSQL.
enum Schema {
    /// The `default` security group as the first migration stores it.
    static var defaultGroupJSON: String {
        let data = (try? ConclaveJSON.encoder().encode(SecurityGroupPolicy(name: .default))) ?? Data()
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "'", with: "''")
    }

    static func migrations(_ dialect: SQLDialect) -> [[String]] {
        let bytes = dialect == .sqlite ? "BLOB" : "BYTEA"
        let int = dialect == .sqlite ? "INTEGER" : "BIGINT"
        let serial = dialect == .sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        return [
            [
                "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, security_group TEXT NOT NULL, suspended \(int) NOT NULL DEFAULT 0, created_at \(int) NOT NULL)",
                """
                CREATE TABLE devices (id TEXT PRIMARY KEY, user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, name TEXT NOT NULL, \
                signature_key \(bytes) NOT NULL UNIQUE, certificate \(bytes) NOT NULL, created_at \(int) NOT NULL, last_seen_at \(int), inbox_seq \(int) NOT NULL DEFAULT 0)
                """,
                "CREATE INDEX devices_user ON devices(user_name)",
                "CREATE TABLE sessions (token_hash \(bytes) PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE, created_at \(int) NOT NULL, expires_at \(int) NOT NULL)",
                "CREATE INDEX sessions_device ON sessions(device_id)",
                """
                CREATE TABLE key_packages (ref \(bytes) PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE, data \(bytes) NOT NULL, \
                last_resort \(int) NOT NULL, created_at \(int) NOT NULL)
                """,
                "CREATE INDEX key_packages_device ON key_packages(device_id, last_resort)",
                """
                CREATE TABLE conversations (id \(bytes) PRIMARY KEY, kind TEXT NOT NULL, name TEXT, direct_key TEXT UNIQUE, created_by TEXT NOT NULL, \
                created_at \(int) NOT NULL, epoch \(int) NOT NULL, group_info \(bytes) NOT NULL, ratchet_tree \(bytes) NOT NULL)
                """,
                "CREATE TABLE conversation_members (conversation_id \(bytes) NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, user_name TEXT NOT NULL, PRIMARY KEY (conversation_id, user_name))",
                "CREATE INDEX conversation_members_user ON conversation_members(user_name)",
                """
                CREATE TABLE conversation_devices (conversation_id \(bytes) NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE, \
                user_name TEXT NOT NULL, PRIMARY KEY (conversation_id, device_id))
                """,
                "CREATE INDEX conversation_devices_device ON conversation_devices(device_id)",
                """
                CREATE TABLE pending_proposals (conversation_id \(bytes) NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, epoch \(int) NOT NULL, \
                ref \(bytes) NOT NULL, message \(bytes) NOT NULL, PRIMARY KEY (conversation_id, ref))
                """,
                """
                CREATE TABLE payloads (id \(serial), conversation_id \(bytes) NOT NULL, kind TEXT NOT NULL, message_id TEXT, data \(bytes) NOT NULL, \
                sender_device TEXT, sent_at \(int) NOT NULL, expires_at \(int))
                """,
                "CREATE UNIQUE INDEX payloads_message ON payloads(conversation_id, sender_device, message_id)",
                "CREATE INDEX payloads_expiry ON payloads(expires_at)",
                "CREATE TABLE inbox (device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE, seq \(int) NOT NULL, payload_id \(int) NOT NULL REFERENCES payloads(id) ON DELETE CASCADE, PRIMARY KEY (device_id, seq))",
                "CREATE INDEX inbox_payload ON inbox(payload_id)",
            ],
            [
                // Conversation settings (ConversationSettings in the GroupContext), in seconds; 0 is off.
                "ALTER TABLE conversations ADD COLUMN message_lifetime \(int) NOT NULL DEFAULT 0",
                "ALTER TABLE conversations ADD COLUMN burn_on_read \(int) NOT NULL DEFAULT 0",
            ],
            [
                // Security groups (policy as JSON: SecurityGroupPolicy) and the hash-chained audit log.
                "CREATE TABLE security_groups (name TEXT PRIMARY KEY, policy TEXT NOT NULL, created_at \(int) NOT NULL)",
                "INSERT INTO security_groups (name, policy, created_at) VALUES ('default', '\(defaultGroupJSON)', 0)",
                "CREATE INDEX users_security_group ON users(security_group)",
                """
                CREATE TABLE audit_log (seq \(int) PRIMARY KEY, at \(int) NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
                target TEXT NOT NULL, before TEXT, after TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, signature \(bytes) NOT NULL)
                """,
                "CREATE INDEX audit_log_at ON audit_log(at)",
                // One row: the chain's head, updated with every entry so that appends take turns on PostgreSQL too.
                "CREATE TABLE audit_head (id \(int) PRIMARY KEY, seq \(int) NOT NULL, hash TEXT NOT NULL)",
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\(AuditEntry.genesisHash)')",
            ],
            [
                // Federation: network settings, pinned peers (signing_key is learned and checked against the fingerprint), seen nonces.
                "CREATE TABLE network_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "INSERT INTO network_settings (name, value) VALUES ('federation_mode', 'listed')",
                """
                CREATE TABLE federation_peers (domain TEXT PRIMARY KEY, url TEXT NOT NULL, key_fingerprint TEXT NOT NULL, \
                signing_key \(bytes), pinned_by TEXT NOT NULL, added_at \(int) NOT NULL)
                """,
                "CREATE TABLE federation_nonces (origin TEXT NOT NULL, nonce TEXT NOT NULL, expires_at \(int) NOT NULL, PRIMARY KEY (origin, nonce))",
                "CREATE INDEX federation_nonces_expiry ON federation_nonces(expires_at)",
            ],
            [
                // Conversations across networks. host: the network hosting a conversation (NULL: this one); a remote
                // conversation's row here holds no group state. conversation_members names remote users by address.
                "ALTER TABLE conversations ADD COLUMN host TEXT",
                """
                CREATE TABLE conversation_remote_devices (conversation_id \(bytes) NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, \
                device_id TEXT NOT NULL, user_address TEXT NOT NULL, PRIMARY KEY (conversation_id, device_id))
                """,
                // Requests to peers, sent in order per destination and retried with backoff until they are accepted.
                """
                CREATE TABLE federation_outbox (id \(serial), destination TEXT NOT NULL, path TEXT NOT NULL, body \(bytes) NOT NULL, \
                created_at \(int) NOT NULL, attempts \(int) NOT NULL DEFAULT 0, next_attempt_at \(int) NOT NULL)
                """,
                "CREATE INDEX federation_outbox_destination ON federation_outbox(destination, id)",
            ],
            [
                // Users vouch for their devices: the public half of each user's identity key; a device of a user with one
                // is pending until an approved device of the user approves it (its approval and the identity key sealed
                // to its transfer key are kept for it).
                "CREATE TABLE user_identities (user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE, public_key \(bytes) NOT NULL, created_at \(int) NOT NULL)",
                "ALTER TABLE devices ADD COLUMN pending \(int) NOT NULL DEFAULT 0",
                "ALTER TABLE devices ADD COLUMN transfer_key \(bytes)",
                "ALTER TABLE devices ADD COLUMN approval \(bytes)",
                "ALTER TABLE devices ADD COLUMN sealed_identity \(bytes)",
            ],
            [
                // Shared files: sealed bytes in the blob directory under their id (no name, no type: those are inside
                // MLS). uploader and readers name a device as "user@domain/device". expires_at: an unshared upload's
                // deadline, or its message's expiry; NULL: kept with the conversation (or, burn-on-read, until its
                // readers, the recipient devices of its message, have all fetched it).
                """
                CREATE TABLE files (id TEXT PRIMARY KEY, conversation_id \(bytes) NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, \
                uploader TEXT NOT NULL, size \(int) NOT NULL, received \(int) NOT NULL DEFAULT 0, created_at \(int) NOT NULL, \
                message_id TEXT, expires_at \(int), burn \(int) NOT NULL DEFAULT 0)
                """,
                "CREATE INDEX files_expiry ON files(expires_at)",
                "CREATE INDEX files_conversation ON files(conversation_id)",
                """
                CREATE TABLE file_readers (file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE, device_id TEXT NOT NULL, \
                user_address TEXT NOT NULL, PRIMARY KEY (file_id, device_id))
                """,
            ],
            [
                // Single sign-on and directory provisioning. sso_flows: a started OpenID Connect sign-in, by the hash of
                // its state, until it is finished once or expires. scim_tokens: the directory's bearer tokens, as hashes.
                // users.sso_subject: "ISSUER SUB" of the account's first SSO sign-in, one account per subject.
                // scim_external_id: the `externalId` the directory gave an account or a security group (RFC 7643 §3.1).
                """
                CREATE TABLE sso_flows (state_hash \(bytes) PRIMARY KEY, nonce TEXT NOT NULL, code_challenge TEXT NOT NULL, \
                redirect_uri TEXT NOT NULL, created_at \(int) NOT NULL, expires_at \(int) NOT NULL)
                """,
                "CREATE INDEX sso_flows_expiry ON sso_flows(expires_at)",
                "CREATE TABLE scim_tokens (id TEXT PRIMARY KEY, token_hash \(bytes) NOT NULL UNIQUE, created_at \(int) NOT NULL)",
                "ALTER TABLE users ADD COLUMN sso_subject TEXT",
                "CREATE UNIQUE INDEX users_sso_subject ON users(sso_subject)",
                // Names of deleted accounts: a single sign-on does not create them again (an administrator or the
                // directory does, which lifts this).
                "CREATE TABLE deleted_accounts (user_name TEXT PRIMARY KEY, deleted_at \(int) NOT NULL)",
                "ALTER TABLE users ADD COLUMN scim_external_id TEXT",
                "ALTER TABLE security_groups ADD COLUMN scim_external_id TEXT",
            ],
            [
                // Named administrators (scrypt password hash, optional TOTP secret and the last time step used, so a
                // code is accepted once), their console sessions (by the hash of the cookie, with the CSRF token of
                // their forms), and named API tokens for scripts (by hash; created_by: the actor who made it, as the
                // audit log names it). role: owner, admin, helpdesk or auditor.
                """
                CREATE TABLE administrators (name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, \
                totp_secret \(bytes), totp_last_step \(int) NOT NULL DEFAULT 0, created_at \(int) NOT NULL)
                """,
                """
                CREATE TABLE admin_sessions (token_hash \(bytes) PRIMARY KEY, \
                admin_name TEXT NOT NULL REFERENCES administrators(name) ON DELETE CASCADE, csrf TEXT NOT NULL, \
                created_at \(int) NOT NULL, expires_at \(int) NOT NULL)
                """,
                "CREATE INDEX admin_sessions_admin ON admin_sessions(admin_name)",
                "CREATE INDEX admin_sessions_expiry ON admin_sessions(expires_at)",
                """
                CREATE TABLE admin_tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash \(bytes) NOT NULL UNIQUE, \
                created_at \(int) NOT NULL, created_by TEXT NOT NULL)
                """,
            ],
            [
                // Post-quantum conversations. A device keeps key packages of each cipher suite it supports (the classical suite 1 and the hybrid
                // post-quantum 0x004D), each suite with its own stock and last-resort package.
                "ALTER TABLE key_packages ADD COLUMN cipher_suite \(int) NOT NULL DEFAULT 1",
                "DROP INDEX key_packages_device",
                "CREATE INDEX key_packages_device ON key_packages(device_id, cipher_suite, last_resort)",
                // A conversation moved to another suite by ReInit (D25): generation counts its successor groups;
                // reinit holds the committed ReInit proposal while the successor has not started.
                "ALTER TABLE conversations ADD COLUMN generation \(int) NOT NULL DEFAULT 0",
                "ALTER TABLE conversations ADD COLUMN reinit \(bytes)",
            ],
            [
                // Key transparency (docs/transparency.md). transparency_state: one row, the log's size (locked by every
                // append, so positions are dense and in commit order), the secret of user indices, and the number of
                // witness cosignatures clients require. transparency_log: the entries (TLS TransparencyEntry), by position.
                // transparency_cosignatures: peers' cosignatures of this network's heads. transparency_witnessed: the last
                // head of each peer this network checked. transparency_evidence: pairs of a peer's heads that contradict.
                """
                CREATE TABLE transparency_state (id \(int) PRIMARY KEY, size \(int) NOT NULL, secret \(bytes) NOT NULL, \
                quorum \(int) NOT NULL DEFAULT 0)
                """,
                dialect == .sqlite
                    ? "INSERT INTO transparency_state (id, size, secret) VALUES (1, 0, randomblob(32))"
                    : "INSERT INTO transparency_state (id, size, secret) VALUES (1, 0, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))",
                "CREATE TABLE transparency_log (position \(int) PRIMARY KEY, user_name TEXT NOT NULL, entry \(bytes) NOT NULL)",
                "CREATE INDEX transparency_log_user ON transparency_log(user_name, position)",
                """
                CREATE TABLE transparency_cosignatures (size \(int) NOT NULL, witness TEXT NOT NULL, head \(bytes) NOT NULL, \
                signature \(bytes) NOT NULL, PRIMARY KEY (size, witness))
                """,
                """
                CREATE TABLE transparency_witnessed (peer TEXT PRIMARY KEY, head \(bytes), signature \(bytes), checked_at \(int), \
                problem TEXT)
                """,
                "CREATE TABLE transparency_evidence (id \(serial), peer TEXT NOT NULL, evidence TEXT NOT NULL, found_at \(int) NOT NULL)",
            ],
            // PostgreSQL: an application message stored in one round trip (ConclaveStore.appendApplication); SQLite runs
            // the same statements from Swift, in the writer's thread, with no round trip to save.
            dialect == .postgres ? [appendMessageFunction] : [],
            // Witness cosignatures carry the time they were signed (docs/transparency.md: clients count recent ones only);
            // those kept before are of the old format and count for nothing (time 0), until the witness signs again.
            ["ALTER TABLE transparency_cosignatures ADD COLUMN cosigned_at \(int) NOT NULL DEFAULT 0"],
            // Messages stored in batches on PostgreSQL (issue 14): one statement and one commit for many.
            dialect == .postgres ? [appendMessagesFunction] : [],
            // Inbox runs (issue 14): a batch of messages gives each recipient device one row per stretch of its entries
            // whose sequence numbers and payload ids both follow on, instead of one inbox row per entry. A run holds
            // at most ConclaveStore.runLimit entries, so the runs that cover a payload start at most that far before it.
            [
                """
                CREATE TABLE inbox_runs (device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE, seq \(int) NOT NULL, \
                entries \(int) NOT NULL, first_payload \(int) NOT NULL, PRIMARY KEY (device_id, seq))
                """,
                "CREATE INDEX inbox_runs_payload ON inbox_runs(first_payload)",
            ],
            // Only payloads that expire are indexed by expiry (issue 14): by default messages have no lifetime, and an
            // index entry for each of them was written with it and deleted with it for nothing.
            ["DROP INDEX payloads_expiry", "CREATE INDEX payloads_expiry ON payloads(expires_at) WHERE expires_at IS NOT NULL"],
        ]
    }

    /// What `appendApplication` does for a message with no file and no
    /// recipient on another network, as one PostgreSQL function, so that a
    /// message is one statement, one round trip and one transaction instead
    /// of seven round trips (BEGIN, five statements, COMMIT) with the
    /// conversation's row locked across all of them; PL/pgSQL keeps the
    /// statements' plans. Its outcome is one row: `stored`, `duplicate`
    /// (D17), `wrong_epoch` (D8), `moving` (D25), `pending` (D11) or
    /// `unknown`; the conversation's epoch; the message's times (its expiry
    /// set by the conversation's message lifetime, else as given); and each
    /// recipient's sequence number as `device:seq,…`.
    static let appendMessageFunction = """
        CREATE FUNCTION conclave_append_message(p_conversation BYTEA, p_epoch BIGINT, p_generation BIGINT, p_kind TEXT, \
        p_message_id TEXT, p_data BYTEA, p_sender TEXT, p_sent_at BIGINT, p_expires_at BIGINT, p_recipients TEXT[]) \
        RETURNS TABLE (outcome TEXT, epoch BIGINT, sent_at BIGINT, expires_at BIGINT, sequences TEXT) LANGUAGE plpgsql AS $$
        DECLARE
            c RECORD;
            v_payload BIGINT;
            v_expires BIGINT;
            v_sequences TEXT;
        BEGIN
            SELECT x.epoch, x.message_lifetime, x.generation, x.reinit IS NOT NULL AS moving,
                EXISTS (SELECT 1 FROM pending_proposals WHERE conversation_id = p_conversation) AS pending
                INTO c FROM conversations x WHERE x.id = p_conversation FOR UPDATE;
            IF NOT FOUND THEN
                RETURN QUERY SELECT 'unknown'::TEXT, 0::BIGINT, 0::BIGINT, NULL::BIGINT, ''::TEXT;
                RETURN;
            END IF;
            IF c.epoch <> p_epoch OR GREATEST(c.generation, 0) <> p_generation OR c.moving OR c.pending THEN
                RETURN QUERY SELECT 'duplicate'::TEXT, c.epoch, p.sent_at, p.expires_at, ''::TEXT FROM payloads p
                    WHERE p.conversation_id = p_conversation AND p.sender_device = p_sender AND p.message_id = p_message_id;
                IF FOUND THEN RETURN; END IF;
                RETURN QUERY SELECT CASE WHEN c.epoch <> p_epoch OR GREATEST(c.generation, 0) <> p_generation THEN 'wrong_epoch'
                    WHEN c.moving THEN 'moving' ELSE 'pending' END::TEXT, c.epoch, 0::BIGINT, NULL::BIGINT, ''::TEXT;
                RETURN;
            END IF;
            v_expires := CASE WHEN c.message_lifetime > 0 THEN p_sent_at + c.message_lifetime * 1000 ELSE p_expires_at END;
            INSERT INTO payloads (conversation_id, kind, message_id, data, sender_device, sent_at, expires_at)
                VALUES (p_conversation, p_kind, p_message_id, p_data, p_sender, p_sent_at, v_expires)
                ON CONFLICT (conversation_id, sender_device, message_id) DO NOTHING RETURNING id INTO v_payload;
            IF v_payload IS NULL THEN
                RETURN QUERY SELECT 'duplicate'::TEXT, c.epoch, p.sent_at, p.expires_at, ''::TEXT FROM payloads p
                    WHERE p.conversation_id = p_conversation AND p.sender_device = p_sender AND p.message_id = p_message_id;
                RETURN;
            END IF;
            PERFORM 1 FROM devices d WHERE d.id = ANY (p_recipients) ORDER BY d.id FOR NO KEY UPDATE;
            WITH numbered AS (
                UPDATE devices d SET inbox_seq = d.inbox_seq + 1 WHERE d.id = ANY (p_recipients) RETURNING d.id, d.inbox_seq
            ), stored AS (
                INSERT INTO inbox (device_id, seq, payload_id) SELECT n.id, n.inbox_seq, v_payload FROM numbered n
                RETURNING device_id, seq
            )
            SELECT string_agg(s.device_id || ':' || s.seq, ',') INTO v_sequences FROM stored s;
            RETURN QUERY SELECT 'stored'::TEXT, c.epoch, p_sent_at, v_expires, COALESCE(v_sequences, '');
        END
        $$
        """

    /// ``appendMessageFunction`` for a batch of messages, in one statement
    /// and one transaction: the arrays hold the messages' arguments in
    /// order (recipients as comma-separated device ids, which are hex), and
    /// each result row carries its message's position from 1 (`item`). Every
    /// message has a message id and a sender (the store sends others alone).
    ///
    /// The conversations' rows and then the recipients' device rows are
    /// locked first, each in id order, as every single message locks its
    /// own: so batches and single messages, in any process, wait for each
    /// other without deadlock. Then one statement does for the whole batch
    /// what the single function does per message, set by set: it checks
    /// each message against its conversation; stores the payloads of those
    /// that pass, in order (of several with one id, the first; the others
    /// are its duplicates, D17); moves each recipient device's counter once
    /// (one row version per device, not one per message) and numbers its
    /// inbox rows in the messages' order; and answers each message as the
    /// single function would: `stored`, `duplicate` (a message of this id
    /// stored before or earlier in the batch, whatever the epoch now is),
    /// `wrong_epoch`, `moving`, `pending` or `unknown`.
    static let appendMessagesFunction = """
        CREATE FUNCTION conclave_append_messages(p_conversations BYTEA[], p_epochs BIGINT[], p_generations BIGINT[], \
        p_kinds TEXT[], p_message_ids TEXT[], p_data BYTEA[], p_senders TEXT[], p_sent_at BIGINT[], p_expires_at BIGINT[], \
        p_recipients TEXT[]) \
        RETURNS TABLE (item INT, outcome TEXT, epoch BIGINT, sent_at BIGINT, expires_at BIGINT, sequences TEXT) \
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        BEGIN
            PERFORM 1 FROM conversations x WHERE x.id = ANY (p_conversations) ORDER BY x.id FOR UPDATE;
            PERFORM 1 FROM devices d WHERE d.id = ANY (string_to_array(array_to_string(p_recipients, ','), ','))
                ORDER BY d.id FOR NO KEY UPDATE;
            RETURN QUERY
            WITH input AS (
                SELECT g.pos, p_conversations[g.pos] AS conversation, p_message_ids[g.pos] AS message_id,
                    p_senders[g.pos] AS sender
                FROM generate_subscripts(p_conversations, 1) AS g(pos)
            ), checked AS (
                SELECT i.pos, x.id IS NULL AS unknown, COALESCE(x.epoch, 0) AS current_epoch, x.message_lifetime,
                    (x.epoch <> p_epochs[i.pos] OR GREATEST(x.generation, 0) <> p_generations[i.pos]) AS wrong_epoch,
                    x.reinit IS NOT NULL AS moving,
                    EXISTS (SELECT 1 FROM pending_proposals q WHERE q.conversation_id = i.conversation) AS pending
                FROM input i LEFT JOIN conversations x ON x.id = i.conversation
            ), passing AS (
                SELECT c.pos, c.message_lifetime FROM checked c
                WHERE NOT c.unknown AND NOT c.wrong_epoch AND NOT c.moving AND NOT c.pending
            ), inserted AS (
                INSERT INTO payloads (conversation_id, kind, message_id, data, sender_device, sent_at, expires_at)
                SELECT p_conversations[a.pos], p_kinds[a.pos], p_message_ids[a.pos], p_data[a.pos], p_senders[a.pos], p_sent_at[a.pos],
                    CASE WHEN a.message_lifetime > 0 THEN p_sent_at[a.pos] + a.message_lifetime * 1000 ELSE p_expires_at[a.pos] END
                FROM passing a ORDER BY a.pos
                ON CONFLICT (conversation_id, sender_device, message_id) DO NOTHING
                RETURNING payloads.id, payloads.conversation_id, payloads.sender_device, payloads.message_id, payloads.sent_at,
                    payloads.expires_at
            ), stored AS (
                SELECT DISTINCT ON (n.id) a.pos, n.id, n.sent_at, n.expires_at
                FROM inserted n JOIN input i ON i.conversation = n.conversation_id AND i.sender = n.sender_device
                    AND i.message_id = n.message_id
                JOIN passing a ON a.pos = i.pos
                ORDER BY n.id, a.pos
            ), earlier AS (
                SELECT i.pos, COALESCE(n.sent_at, p.sent_at) AS sent_at, COALESCE(n.expires_at, p.expires_at) AS expires_at
                FROM input i
                LEFT JOIN inserted n ON n.conversation_id = i.conversation AND n.sender_device = i.sender AND n.message_id = i.message_id
                LEFT JOIN payloads p ON p.conversation_id = i.conversation AND p.sender_device = i.sender AND p.message_id = i.message_id
                WHERE n.id IS NOT NULL OR p.id IS NOT NULL
            ), wanted AS (
                SELECT r.pos, r.device, row_number() OVER (PARTITION BY r.device ORDER BY r.pos) AS k FROM (
                    SELECT s.pos, unnest(string_to_array(p_recipients[s.pos], ',')) AS device FROM stored s) r
            ), counts AS (
                SELECT w.device, count(*) AS n FROM wanted w GROUP BY w.device
            ), bumped AS (
                UPDATE devices d SET inbox_seq = d.inbox_seq + t.n FROM counts t WHERE d.id = t.device
                RETURNING d.id, d.inbox_seq - t.n AS base
            ), numbered AS (
                SELECT w.pos, w.device, b.base + w.k AS seq FROM wanted w JOIN bumped b ON b.id = w.device
            ), delivered AS (
                INSERT INTO inbox (device_id, seq, payload_id) SELECT m.device, m.seq, s.id FROM numbered m JOIN stored s ON s.pos = m.pos
                RETURNING inbox.device_id
            ), sequenced AS (
                SELECT s.pos, COALESCE(string_agg(m.device || ':' || m.seq, ',' ORDER BY m.device), '') AS list
                FROM stored s LEFT JOIN numbered m ON m.pos = s.pos GROUP BY s.pos
            )
            SELECT c.pos,
                (CASE WHEN c.unknown THEN 'unknown' WHEN s.pos IS NOT NULL THEN 'stored' WHEN e.pos IS NOT NULL THEN 'duplicate'
                    WHEN c.wrong_epoch THEN 'wrong_epoch' WHEN c.moving THEN 'moving' WHEN c.pending THEN 'pending'
                    ELSE 'duplicate' END)::TEXT,
                c.current_epoch,
                CASE WHEN s.pos IS NOT NULL THEN s.sent_at WHEN e.pos IS NOT NULL AND NOT c.unknown THEN e.sent_at
                    WHEN c.unknown OR c.wrong_epoch OR c.moving OR c.pending THEN 0::BIGINT ELSE p_sent_at[c.pos] END,
                CASE WHEN s.pos IS NOT NULL THEN s.expires_at WHEN e.pos IS NOT NULL AND NOT c.unknown THEN e.expires_at END,
                COALESCE(q.list, '')::TEXT
            FROM checked c LEFT JOIN stored s ON s.pos = c.pos LEFT JOIN earlier e ON e.pos = c.pos AND s.pos IS NULL
                LEFT JOIN sequenced q ON q.pos = c.pos
            WHERE (SELECT count(*) FROM delivered) >= 0;
        END
        $$
        """
}
