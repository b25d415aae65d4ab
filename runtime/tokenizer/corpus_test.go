package tokenizer

import (
	"math/rand/v2"
	"strings"
)

// handTexts are multilingual texts written for the comparison with
// js-tiktoken. They avoid the three places where JavaScript's regex
// differs from Rust's (what tiktoken runs): U+0085 and U+FEFF (\s), and
// 'ſ (case folding); TestRustSemantics covers those.
var handTexts = []string{
	"Hello, world! This is a test of the o200k tokenizer.",
	"The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
	"DON'T, WON'T, I'M, YOU'RE, WE'VE, SHE'LL, HE'D, IT'S — don't won't i'm you're we've she'll he'd it's",
	"DoN'T ReAlLy'Ll mIxEd'Ve CaSe'S 'S 's 'T '' ''s x'y",
	"Saya suka makan nasi goreng dan mee rebus. Selamat pagi, apa khabar? Terima kasih banyak-banyak!",
	"Perpustakaan negara menyediakan buku-buku dalam Bahasa Melayu, Inggeris dan Jawi.",
	"Ça va? Je m'appelle Zoë, l'été dernier j'ai visité Besançon. Ärger über Öl, Größe, Straße.",
	"Español: ¿Dónde está la biblioteca? ¡Qué bien! Português: não, coração, ação.",
	"日本語のテキストです。東京は日本の首都です。カタカナとひらがな、漢字。",
	"中文文本：我爱北京天安门。今天天气很好，我们去公园散步吧！",
	"한국어 텍스트입니다. 안녕하세요, 만나서 반갑습니다.",
	"مرحبا بالعالم! هذا نص عربي للاختبار. السلام عليكم ورحمة الله.",
	"नमस्ते दुनिया! यह हिंदी में एक परीक्षण है। क्या हाल है?",
	"Русский текст: Привет, мир! Как дела? ЁЛКИ-ПАЛКИ.",
	"Ελληνικά: Γειά σου Κόσμε! ΑΒΓΔ αβγδ.",
	"עברית: שלום עולם! זה מבחן.",
	"ไทย: สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
	"Tiếng Việt: Xin chào thế giới! Tôi yêu Việt Nam.",
	"Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🇲🇾🇯🇵 1️⃣ ©️ ™ 🧑🏿‍💻",
	"Mixed: hello世界مرحبا123abc😀नमस्तेПривет",
	"func main() {\n\tfmt.Println(\"hello\")\n\tfor i := 0; i < 10; i++ {\n\t\tx += i*2\n\t}\n}\n",
	"def f(x):\n    return [y**2 for y in range(x) if y % 3 == 0]  # comment\n\n\nclass A:\n    pass\n",
	"if (a && b || !c) { return a->b[0] >= 0x1F ? ~d : e << 2; } // C++\r\n",
	"<html><body><p class=\"x\">Text &amp; more</p></body></html>",
	"https://example.com/path/to/file.html?query=1&x=2#frag /usr/local/bin//x ///",
	"JSON: {\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
	"Numbers: 1 12 123 1234 12345 123456 1234567890 3.14159 1,000,000 ١٢٣٤٥ १२३४ ⅠⅡⅢ ½ ²³",
	"                                                                spaces",
	"tabs\t\t\tand\t \t mixed \t\n\n\n\n newlines\r\n\r\n\r\r\n  \n\t\n",
	"trailing spaces   ",
	"   leading spaces",
	"\n\n\nleading newlines",
	"  \u00a0\u2003 unicode\u3000spaces\u2009here\u202f",
	"a  b   c    d     e\n  f\n\n  g",
	"Ünïcödé ÀÉÎÕÜ àéîõü Ǆǅǆ ǅungla ᾼ ﬁ ﬂ",
	"combining: e\u0301 a\u0300\u0301 \u0301start Z\u0335\u0311\u0346a\u0337l\u0336g\u0338o",
	"ZWJ and ZWNJ: a\u200db c\u200cd \u200d\u200d",
	"Math: ∀x∈ℝ, ∃y: x²+y²=z² → ∞ ≠ ∅ ∑∫∂",
	"Currency: $100 €50 £20 ¥1000 ₹500 ₿0.5",
	"Punct runs: !!!??? ... --- *** ### @@@ ((()))",
	"slashes and newlines: a/b/c\n//\n\r/\n",
	"'quoted' \"double\" `back` «guillemets» „German“ 「Japanese」",
	"<|start|>user<|message|>Hello<|end|><|start|>assistant<|channel|>final<|message|>Hi!<|return|>",
	"text with <|endoftext|> inside and <|reserved_200100|> and <|notaspecial|>",
	"MiXeD CaSe WoRdS aNd ALLCAPS and lowercase and Title Case And camelCase and snake_case",
	"Ỳ ỳ ǈ ǋ ᾈ ᾉ ᾊ — titlecase letters: ǅ ǈ ǋ ǲ",
	"Lm/Lo: ʰʲʷ ˀ ˁ ᵃᵇᶜ ー 々 〻 ꜜ",
	"",
	" ",
	"\n",
	"a",
	"'",
	"'s",
	" 's",
	"1234567",
	"hello\u00a0world",
}

// atoms are the pieces random texts are made of.
var atoms = []string{
	"the", "The", "THE", "hello", "World", "don't", "DON'T", "I'M", "you're", "we'VE", "it's",
	"makan", "selamat", "khabar", "Bahasa",
	"日本", "語", "東京", "カタカナ", "ひらがな", "中文", "我们", "한국어", "안녕",
	"مرحبا", "العالم", "नमस्ते", "दुनिया", "Привет", "мир", "Γειά", "שלום", "สวัสดี",
	"😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇲🇾", "1️⃣",
	"0", "7", "42", "123", "4567", "99999", "3.14", "١٢٣",
	" ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\t\n ", "\u00a0", "\u3000",
	".", ",", "!", "?", "...", "'", "\"", "(", ")", "{", "}", "[", "]", "/", "//", "\\", "-", "_", "=", "+", "*",
	"<", ">", "<|", "|>", "#", "@", "$", "%", "&", "^", "~", "`", ";", ":",
	"e\u0301", "\u0301", "\u0300", "é", "ß", "Ǆ", "ǅ", "ʰ", "ー",
	"func", "return", "x := 1", "if", "else", "camelCase", "snake_case", "ALLCAPS",
}

// randomTexts builds n texts of random atoms, deterministic for a seed.
func randomTexts(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		k := 1 + r.IntN(40)
		for j := 0; j < k; j++ {
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
		out[i] = b.String()
	}
	return out
}

// corpus is every text compared with js-tiktoken.
func corpus() []string {
	texts := append([]string(nil), handTexts...)
	// Every line of the hand texts on its own, and all of them as one.
	for _, t := range handTexts {
		if strings.Contains(t, "\n") {
			texts = append(texts, strings.Split(t, "\n")...)
		}
	}
	texts = append(texts, strings.Join(handTexts, "\n"))
	return append(texts, randomTexts(1, 1500)...)
}
