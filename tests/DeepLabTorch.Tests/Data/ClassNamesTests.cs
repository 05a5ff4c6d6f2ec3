using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class ClassNamesTests
{
    [Fact]
    public void DefaultsAndThePersonComeFromOnePlace()
    {
        Assert.Equal(21, ClassNames.Default(21).Count);
        Assert.Equal("person", ClassNames.Default(21)[15]);
        Assert.Equal(["background", "person"], ClassNames.Default(2));
        Assert.Equal(["background", "class1", "class2"], ClassNames.Default(3));
        Assert.Equal(15, ClassNames.PersonIndex(ClassNames.Default(21)));
        Assert.Equal(2, ClassNames.PersonIndex(["background", "cat", "Person"]));
        Assert.Equal(1, ClassNames.PersonIndex(["background", "hair", "skin"]));
        Assert.Equal(0, ClassNames.PersonIndex(["only"]));
        Assert.Equal(15, ClassNames.PersonIndex(21L));
        Assert.Equal(1, ClassNames.PersonIndex(2L));
        Assert.Equal(0, ClassNames.PersonIndex(1L));
    }
}
