namespace Vip.Selection;

/// <summary>The comparison a <see cref="RequirementTerm"/> makes against one server attribute.</summary>
public enum RequirementOperator
{
    /// <summary><c>key=value</c>: the server has the key with exactly this value (ordinal, case-sensitive).</summary>
    Equal,

    /// <summary><c>key!=value</c>: the server lacks the key or has another value.</summary>
    NotEqual,

    /// <summary><c>key in (a,b)</c>: the server has the key with one of the listed values.</summary>
    In,

    /// <summary><c>key notin (a,b)</c>: the server lacks the key or has none of the listed values.</summary>
    NotIn,

    /// <summary><c>key</c>: the server has the key, whatever its value.</summary>
    Exists,

    /// <summary><c>!key</c>: the server does not have the key.</summary>
    Absent,

    /// <summary><c>key&gt;n</c>: the server's value is a number greater than <c>n</c>.</summary>
    GreaterThan,

    /// <summary><c>key&gt;=n</c>: the server's value is a number greater than or equal to <c>n</c>.</summary>
    GreaterOrEqual,

    /// <summary><c>key&lt;n</c>: the server's value is a number less than <c>n</c>.</summary>
    LessThan,

    /// <summary><c>key&lt;=n</c>: the server's value is a number less than or equal to <c>n</c>.</summary>
    LessOrEqual,
}
