namespace Serving.Contracts.Lora;

/// <summary>The seven projections of a Llama decoder layer a LoRA adapter may target (PEFT <c>target_modules</c> names in comments).</summary>
public enum LoraTarget
{
    Q,      // self_attn.q_proj
    K,      // self_attn.k_proj
    V,      // self_attn.v_proj
    O,      // self_attn.o_proj
    Gate,   // mlp.gate_proj
    Up,     // mlp.up_proj
    Down,   // mlp.down_proj
}
