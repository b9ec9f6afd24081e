import ConclaveStorage
import Foundation
import Metrics
import Prometheus
import Synchronization

/// The server's metrics (docs/operations.md#metrics), recorded through
/// swift-metrics into this server's own Prometheus registry (not the
/// process-wide one: every in-process test server counts for itself) and
/// rendered in the Prometheus text format at `/metrics`. Labels are route
/// templates, methods, statuses and peer domains only: never a user name,
/// a token or content.
final class ServerMetrics: TransactionObserver {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let messagesAccepted: Metrics.Counter
    private let messagesDelivered: Metrics.Counter
    private let auditAppends: Metrics.Counter
    private let transactions: Metrics.Timer
    private let webSockets: Metrics.Gauge
    private let inboxDepth: Metrics.Gauge
    private let openSockets = Mutex(0)
    /// Outbox depth gauges by peer, so that a peer whose queue emptied reads 0.
    private let outboxGauges = Mutex<[String: Metrics.Gauge]>([:])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let latency: [Duration] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        ]
        factory.defaultDurationHistogramBuckets = latency
        self.factory = factory
        messagesAccepted = Metrics.Counter(label: "conclave_messages_accepted_total", factory: factory)
        messagesDelivered = Metrics.Counter(label: "conclave_messages_delivered_total", factory: factory)
        auditAppends = Metrics.Counter(label: "conclave_audit_appends_total", factory: factory)
        transactions = Metrics.Timer(label: "conclave_db_transaction_duration_seconds", factory: factory)
        webSockets = Metrics.Gauge(label: "conclave_websockets_open", factory: factory)
        inboxDepth = Metrics.Gauge(label: "conclave_inbox_depth", factory: factory)
    }

    /// One answered HTTP request: its method, route template (`/v1/admin/users/{name}`,
    /// or `unmatched`), status and latency.
    func request(method: String, route: String, status: Int, duration: Duration) {
        let key = RequestSeries(method: method, route: route, status: status)
        let (count, latency) = requestSeries.withLock { series in
            if let known = series[key] { return known }
            let made = (
                Metrics.Counter(
                    label: "conclave_http_requests_total", dimensions: [("method", method), ("route", route), ("status", String(status))],
                    factory: factory),
                Metrics.Timer(
                    label: "conclave_http_request_duration_seconds", dimensions: [("method", method), ("route", route)], factory: factory)
            )
            series[key] = made
            return made
        }
        count.increment()
        latency.record(duration: duration)
    }

    /// The metrics of one kind of answered request, made on its first
    /// request and kept (not looked up in the registry on every request).
    private struct RequestSeries: Hashable {
        let method: String
        let route: String
        let status: Int
    }
    private let requestSeries = Mutex<[RequestSeries: (Metrics.Counter, Metrics.Timer)]>([:])

    func messageAccepted() { messagesAccepted.increment() }
    func delivered(_ count: Int) { if count > 0 { messagesDelivered.increment(by: count) } }
    func auditAppended() { auditAppends.increment() }
    func transactionEnded(after duration: Duration) { transactions.record(duration: duration) }

    func webSocketOpened() {
        webSockets.record(
            openSockets.withLock {
                $0 += 1
                return $0
            })
    }
    func webSocketClosed() {
        webSockets.record(
            openSockets.withLock {
                $0 -= 1
                return $0
            })
    }

    func federationRetry(peer: String) {
        Metrics.Counter(label: "conclave_federation_retries_total", dimensions: [("peer", peer)], factory: factory).increment()
    }

    /// The text at `/metrics`, after reading the gauges the store answers
    /// (inbox depth, federation outbox depth per peer).
    func render(store: ConclaveStore) async throws -> [UInt8] {
        inboxDepth.record(try await store.inboxDepth())
        let depths = try await store.outboxDepths()
        outboxGauges.withLock { gauges in
            for (peer, gauge) in gauges where depths[peer] == nil { gauge.record(0) }
            for (peer, depth) in depths {
                let gauge =
                    gauges[peer] ?? Metrics.Gauge(label: "conclave_federation_outbox_depth", dimensions: [("peer", peer)], factory: factory)
                gauges[peer] = gauge
                gauge.record(depth)
            }
        }
        return registry.emitToBuffer()
    }
}
