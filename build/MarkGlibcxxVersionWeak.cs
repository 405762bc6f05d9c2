using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

// Marks one GNU version requirement (an Elf64_Vernaux in .gnu.version_r) as weak, so the dynamic loader
// accepts a libstdc++ that lacks it. Only acts when the system libstdc++ really lacks the version.
public class MarkGlibcxxVersionWeak : Task
{
    [Required] public string Library { get; set; } = "";
    [Required] public string VersionName { get; set; } = "";

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        string? systemLib = Array.Find(LibStdCxxCandidates, File.Exists);
        if (systemLib != null && Contains(File.ReadAllBytes(systemLib), Encoding.ASCII.GetBytes(VersionName + "\0")))
        {
            Log.LogMessage(MessageImportance.Low, $"{systemLib} provides {VersionName}; {Library} left unchanged.");
            return true;
        }
        try
        {
            byte[] elf = File.ReadAllBytes(Library);
            int changed = Patch(elf, VersionName);
            if (changed < 0) { Log.LogWarning($"{Library}: no {VersionName} requirement found; not patched."); return true; }
            if (changed > 0)
            {
                File.WriteAllBytes(Library, elf);
                Log.LogMessage(MessageImportance.Normal, $"Marked {VersionName} weak in {Library} (system libstdc++ lacks it).");
            }
            return true;
        }
        catch (Exception e)
        {
            Log.LogError($"Could not patch {Library}: {e.Message}");
            return false;
        }
    }

    // Returns the number of records changed, 0 if already weak, -1 if the requirement is absent.
    static int Patch(byte[] elf, string versionName)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2)
            throw new InvalidDataException("not a 64-bit ELF file");
        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int found = -1;
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            int secOffset = checked((int)BitConverter.ToUInt64(elf, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int strSh = checked((int)shoff + link * shentsize);
            int strOffset = checked((int)BitConverter.ToUInt64(elf, strSh + 0x18));
            int need = secOffset;
            while (true)
            {
                ushort cnt = BitConverter.ToUInt16(elf, need + 2);
                uint aux = BitConverter.ToUInt32(elf, need + 8);
                uint next = BitConverter.ToUInt32(elf, need + 12);
                int a = need + (int)aux;
                for (int k = 0; k < cnt; k++)
                {
                    uint name = BitConverter.ToUInt32(elf, a + 8);
                    if (ReadCString(elf, strOffset + (int)name) == versionName)
                    {
                        if (found < 0) found = 0;
                        ushort flags = BitConverter.ToUInt16(elf, a + 4);
                        if ((flags & VerFlgWeak) == 0)
                        {
                            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, a + 4);
                            found++;
                        }
                    }
                    uint anext = BitConverter.ToUInt32(elf, a + 12);
                    if (anext == 0) break;
                    a += (int)anext;
                }
                if (next == 0) break;
                need += (int)next;
            }
        }
        return found;
    }

    static string ReadCString(byte[] b, int offset)
    {
        int end = offset;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, offset, end - offset);
    }

    static bool Contains(byte[] haystack, byte[] needle)
    {
        // The task compiles against netstandard (no span search), hence the plain loop.
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }
}
