using System.IO.Compression;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Xml.Linq;

namespace Vip.Tests.Packaging;

/// <summary>What a portable PDB says: its id, its SourceLink map (null when none), and how many of its documents embed their source.</summary>
internal sealed record PdbContents(Guid Id, string? SourceLinkJson, int Documents, int EmbeddedDocuments);

/// <summary>Reads what the tests check inside a .nupkg/.snupkg: entries, the nuspec, the assembly's public types, PDB contents.</summary>
internal static class PackageInspection
{
    // Custom debug information kinds of the portable PDB format (dotnet/runtime, docs/design/specs/PortablePdb-Metadata.md).
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");
    private static readonly Guid EmbeddedSourceKind = new("0E8A571B-6926-466E-B4AD-8AB04611F5FE");

    public static byte[] ReadEntry(ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name) ?? throw new AssertionException($"the package has no entry {name}");
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    public static XDocument ReadNuspec(ZipArchive zip)
    {
        using var stream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/', StringComparison.Ordinal)).Open();
        return XDocument.Load(stream);
    }

    /// <summary>The XML-doc ids (<c>T:Namespace.Type</c>, nested as <c>T:Namespace.Outer.Inner</c>) of every type visible outside the assembly.</summary>
    public static IReadOnlyList<string> PublicTypeDocIds(byte[] assembly)
    {
        using var pe = new PEReader(new MemoryStream(assembly));
        var md = pe.GetMetadataReader();
        var ids = new List<string>();
        foreach (var handle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(handle);
            if (IsVisible(md, type))
            {
                ids.Add("T:" + FullName(md, type));
            }
        }

        return ids;
    }

    /// <summary>The PDB id recorded in the assembly's CodeView debug directory entry (what a debugger matches symbols by).</summary>
    public static Guid CodeViewPdbId(byte[] assembly)
    {
        using var pe = new PEReader(new MemoryStream(assembly));
        return pe.ReadDebugDirectory().Where(e => e.Type == DebugDirectoryEntryType.CodeView).Select(e => pe.ReadCodeViewDebugDirectoryData(e).Guid).Single();
    }

    /// <summary>True when the assembly carries its PDB inside (then the symbol package would be redundant).</summary>
    public static bool HasEmbeddedPdb(byte[] assembly)
    {
        using var pe = new PEReader(new MemoryStream(assembly));
        return pe.ReadDebugDirectory().Any(e => e.Type == DebugDirectoryEntryType.EmbeddedPortablePdb);
    }

    public static PdbContents ReadPdb(byte[] pdb)
    {
        using var provider = MetadataReaderProvider.FromPortablePdbStream(new MemoryStream(pdb));
        var md = provider.GetMetadataReader();
        var id = new Guid(md.DebugMetadataHeader!.Id.AsSpan()[..16]);
        string? sourceLink = null;
        foreach (var handle in md.GetCustomDebugInformation(EntityHandle.ModuleDefinition))
        {
            var info = md.GetCustomDebugInformation(handle);
            if (md.GetGuid(info.Kind) == SourceLinkKind)
            {
                sourceLink = Encoding.UTF8.GetString(md.GetBlobBytes(info.Value));
            }
        }

        var embedded = 0;
        foreach (var document in md.Documents)
        {
            if (md.GetCustomDebugInformation(document).Any(h => md.GetGuid(md.GetCustomDebugInformation(h).Kind) == EmbeddedSourceKind))
            {
                embedded++;
            }
        }

        return new PdbContents(id, sourceLink, md.Documents.Count, embedded);
    }

    private static bool IsVisible(MetadataReader md, TypeDefinition type)
    {
        var visibility = type.Attributes & TypeAttributes.VisibilityMask;
        return visibility switch
        {
            TypeAttributes.Public => true,
            TypeAttributes.NestedPublic or TypeAttributes.NestedFamily or TypeAttributes.NestedFamORAssem => IsVisible(md, md.GetTypeDefinition(type.GetDeclaringType())),
            _ => false,
        };
    }

    private static string FullName(MetadataReader md, TypeDefinition type)
    {
        var name = md.GetString(type.Name);
        if (type.IsNested)
        {
            return FullName(md, md.GetTypeDefinition(type.GetDeclaringType())) + "." + name;
        }

        var ns = md.GetString(type.Namespace);
        return ns.Length == 0 ? name : ns + "." + name;
    }
}
