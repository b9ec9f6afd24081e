import ConclaveClient
import Testing

/// A received file's name is the sender's choice: it is shown and saved
/// only once it is safe (docs/client.md#files).
struct FileNameTests {
    @Test(
        "Path components, control and formatting characters, leading dots and surrounding spaces go; the rest stays",
        arguments: [
            ("report.pdf", "report.pdf"),
            ("résumé 2026 — final.pdf", "résumé 2026 — final.pdf"),
            ("../../etc/passwd", "passwd"),
            ("/etc/shadow", "shadow"),
            ("a/b\\c.txt", "c.txt"),
            ("C:\\Users\\eve\\notes.doc", "notes.doc"),
            ("..", "file"),
            ("...", "file"),
            ("", "file"),
            ("/", "file"),
            (".bashrc", "bashrc"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("bell\u{7}and\u{0}nul\nnewline.txt", "bellandnulnewline.txt"),
            ("zero\u{200B}width.txt", "zerowidth.txt"),
            ("\u{202E}\u{202E}", "file"),
        ])
    func sanitised(_ given: String, _ expected: String) {
        #expect(ConclaveClient.safeFileName(given) == expected)
    }

    @Test("A long name is cut to 200 bytes on a character boundary")
    func long() {
        let name = ConclaveClient.safeFileName(String(repeating: "é", count: 300) + ".txt")
        #expect(name.utf8.count == 200)
        #expect(name == String(repeating: "é", count: 100))
    }
}
