"""The file formats RVC users bring. All of them are untrusted input: never plain pickle."""
