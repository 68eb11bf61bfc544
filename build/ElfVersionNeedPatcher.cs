// Compiled by MSBuild's RoslynCodeTaskFactory (see build/TorchSharpNative.targets); no project includes it.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Marks the GLIBCXX_3.4.32 version requirement of libLibTorchSharp.so weak (VER_FLG_WEAK in its Vernaux
/// entry), so the library loads against GCC 12's libstdc++ (Debian 12, Ubuntu 22.04). The only symbol bound
/// to that version is <c>_ZSt21ios_base_library_initv</c>, which has no relocation, so the loader never needs
/// it; the task verifies that before patching and fails with a clear message when the file is not what it
/// expects. Idempotent: a file already patched, or one without the requirement, is left unchanged.
/// </summary>
public sealed class ElfVersionNeedPatcher : Microsoft.Build.Utilities.Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;
    private const uint ShtDynsym = 11;
    private const ushort VerFlgWeak = 0x2;

    [Required] public string File { get; set; } = "";
    public string Version { get; set; } = "GLIBCXX_3.4.32";
    public string AllowedSymbol { get; set; } = "_ZSt21ios_base_library_initv";

    public override bool Execute()
    {
        try
        {
            var result = Patch(File, Version, AllowedSymbol);
            Log.LogMessage(MessageImportance.Low, $"{File}: {result}");
            return true;
        }
        catch (InvalidDataException ex)
        {
            Log.LogError($"Cannot apply the {Version} weak-version fix to '{File}': {ex.Message}");
            return false;
        }
    }

    public static string Patch(string path, string version, string allowedSymbol)
    {
        byte[] elf = System.IO.File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a 64-bit little-endian ELF file");

        ulong shoff = U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        if (shoff == 0 || shnum == 0 || shoff + (ulong)(shentsize * shnum) > (ulong)elf.Length)
            throw new InvalidDataException("section header table missing or out of range");

        int verneed = -1, versym = -1, dynsym = -1;
        for (int i = 0; i < shnum; i++)
        {
            uint type = U32(elf, (int)shoff + i * shentsize + 4);
            if (type == ShtGnuVerneed) verneed = i;
            else if (type == ShtGnuVersym) versym = i;
            else if (type == ShtDynsym) dynsym = i;
        }
        if (verneed < 0 || versym < 0 || dynsym < 0)
            throw new InvalidDataException("no .gnu.version_r/.gnu.version/.dynsym section");

        int Sh(int index, int field) => (int)shoff + index * shentsize + field;
        long needOff = (long)U64(elf, Sh(verneed, 0x18));
        int needStr = (int)U32(elf, Sh(verneed, 0x28));
        long strOff = (long)U64(elf, Sh(needStr, 0x18));
        uint needCount = U32(elf, Sh(verneed, 0x2C));

        long entry = needOff;
        for (uint n = 0; n < needCount; n++)
        {
            ushort auxCount = U16(elf, (int)entry + 2);
            long aux = entry + U32(elf, (int)entry + 8);
            for (int a = 0; a < auxCount; a++)
            {
                string name = CString(elf, strOff + U32(elf, (int)aux + 8));
                if (name == version)
                {
                    ushort flags = U16(elf, (int)aux + 4);
                    if ((flags & VerFlgWeak) != 0)
                        return "already patched";
                    ushort versionIndex = U16(elf, (int)aux + 6);
                    CheckOnlyAllowedSymbolUses(elf, versionIndex, versym, dynsym, Sh, allowedSymbol, version);
                    ushort patched = (ushort)(flags | VerFlgWeak);
                    elf[aux + 4] = (byte)patched;
                    elf[aux + 5] = (byte)(patched >> 8);
                    ReplaceFile(path, elf);
                    return "patched";
                }
                aux += U32(elf, (int)aux + 12);
            }
            entry += U32(elf, (int)entry + 12);
        }
        return "no " + version + " requirement; nothing to patch";
    }

    /// <summary>
    /// Writes a new file and renames it over <paramref name="path"/>, never writing into the old one: the build
    /// hard-links copy-local files to the NuGet cache (Directory.Build.props), and an in-place write would patch the
    /// cache's library and every other output linked to it.
    /// </summary>
    private static void ReplaceFile(string path, byte[] contents)
    {
        string temporary = path + ".patching";
        System.IO.File.WriteAllBytes(temporary, contents);
        System.IO.File.Replace(temporary, path, destinationBackupFileName: null);
    }

    private static void CheckOnlyAllowedSymbolUses(byte[] elf, ushort versionIndex, int versym, int dynsym,
        Func<int, int, int> sh, string allowedSymbol, string version)
    {
        long symOff = (long)U64(elf, sh(dynsym, 0x18));
        long symSize = (long)U64(elf, sh(dynsym, 0x20));
        long symEnt = (long)U64(elf, sh(dynsym, 0x38));
        int symStr = (int)U32(elf, sh(dynsym, 0x28));
        long symStrOff = (long)U64(elf, sh(symStr, 0x18));
        long verOff = (long)U64(elf, sh(versym, 0x18));
        long count = symSize / symEnt;
        for (long i = 0; i < count; i++)
        {
            ushort v = (ushort)(U16(elf, (int)(verOff + 2 * i)) & 0x7fff);
            if (v != versionIndex) continue;
            string name = CString(elf, symStrOff + U32(elf, (int)(symOff + i * symEnt)));
            if (name != allowedSymbol)
                throw new InvalidDataException($"symbol '{name}' also requires {version}; marking it weak would be unsafe");
        }
    }

    private static ushort U16(byte[] b, int o) => BitConverter.ToUInt16(b, o);
    private static uint U32(byte[] b, int o) => BitConverter.ToUInt32(b, o);
    private static ulong U64(byte[] b, int o) => BitConverter.ToUInt64(b, o);

    private static string CString(byte[] b, long o)
    {
        long end = o;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)o, (int)(end - o));
    }
}
