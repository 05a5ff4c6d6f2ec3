using DeepLabTorch.Runtime;

// Usage: elffix FOLDER...  Finds every libLibTorchSharp.so under each folder and marks its
// GLIBCXX_3.4.32 requirement weak. Idempotent; prints one line per file it changed.
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: elffix FOLDER...");
    return 2;
}
foreach (var folder in args.Where(Directory.Exists))
{
    foreach (var file in Directory.EnumerateFiles(folder, ElfVersionNeeds.TorchSharpLibrary, SearchOption.AllDirectories))
    {
        try
        {
            int changed = ElfVersionNeeds.MakeWeakInFile(file);
            if (changed > 0) Console.WriteLine($"elffix: {file}: {ElfVersionNeeds.GlibcxxVersion} requirement marked weak");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"elffix: {file}: {e.Message}");
            return 1;
        }
    }
}
return 0;
