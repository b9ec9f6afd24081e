import MLS

#if canImport(Glibc)
    import Glibc
#endif

// mls-bench: prints Markdown tables of MLS performance (see docs/benchmarks.md).
//
//   mls-bench [framing] [--seconds S] [--all-suites]
//   mls-bench groups [--sizes 10,100,1000,10000] [--iterations N] [--suite 0x004d]

let arguments = Array(CommandLine.arguments.dropFirst())
let mode = arguments.first.map { $0.hasPrefix("--") ? "framing" : $0 } ?? "framing"

func option(_ name: String, in arguments: [String]) -> String? {
    guard let position = arguments.firstIndex(of: name), position + 1 < arguments.count else { return nil }
    return arguments[position + 1]
}

switch mode {
case "framing":
    let budget = option("--seconds", in: arguments).flatMap(Double.init) ?? 1.0
    let suites = arguments.contains("--all-suites") ? CipherSuite.implemented : [.x25519Aes128Sha256Ed25519]
    try framingBenchmark(suites: suites, budget: budget)
case "groups":
    let sizes = (option("--sizes", in: arguments) ?? "10,100,1000,10000").split(separator: ",").compactMap { Int($0) }
    let iterations = option("--iterations", in: arguments).flatMap(Int.init) ?? 20
    let suiteText = option("--suite", in: arguments) ?? "1"
    guard let number = suiteText.hasPrefix("0x") ? UInt16(suiteText.dropFirst(2), radix: 16) : UInt16(suiteText),
        CipherSuite.implemented.contains(CipherSuite(rawValue: number))
    else {
        print("--suite takes one of \(CipherSuite.implemented.map { "0x" + String($0.rawValue, radix: 16) }.joined(separator: ", "))")
        exit(2)
    }
    try groupsBenchmark(sizes: sizes, iterations: iterations, suite: CipherSuite(rawValue: number))
default:
    print(
        "usage: mls-bench [framing] [--seconds S] [--all-suites] | mls-bench groups [--sizes 10,100,1000,10000] [--iterations N] [--suite S]"
    )
    exit(2)
}
